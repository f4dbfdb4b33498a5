import json
import math

import pytest

from aloe.records import (
    RECORD_KEYS, NotEnoughData, code_version, make_record, make_unavailable_record, read_records, record_status,
    write_record, write_records,
)


def test_write_and_read_records(tmp_path):
    path = tmp_path / "res" / "lp.json"
    rec = write_record(path, "lp_top1", 81.25, backbone="vit_b16", variant="aloe", dataset="cifar10",
                       params={"iterations": 100})
    assert json.loads(path.read_text()) == [rec]
    assert read_records(path) == [rec]
    assert set(rec) == {*RECORD_KEYS, "status"} and rec["status"] == "ok"
    assert rec["value"] == 81.25 and rec["code_version"] == code_version()
    assert code_version().startswith("0.1.0")
    recs = [make_record(m, v, backbone="b", variant="teacher", dataset="d") for m, v in [("a", 1), ("b", 2)]]
    write_records(tmp_path / "two.json", recs)
    assert [r["metric"] for r in read_records(tmp_path / "two.json")] == ["a", "b"]


def test_bad_records_rejected(tmp_path):
    with pytest.raises(ValueError, match="nan"):
        make_record("lp_top1", math.nan, backbone="b", variant="v", dataset="d")
    (tmp_path / "x.json").write_text('{"metric": 1}')
    with pytest.raises(ValueError, match="x.json"):
        read_records(tmp_path / "x.json")
    with pytest.raises(ValueError, match="lacks keys"):
        write_records(tmp_path / "y.json", [{"metric": "a"}])
    assert not (tmp_path / "y.json").exists()


def test_unavailable_record(tmp_path):
    err = NotEnoughData("GridPG needs >= 4 classes; found 1", {"classes_found": 1, "classes_needed": 4})
    rec = make_unavailable_record("gridpg", err, backbone="b", variant="aloe", dataset="shapes",
                                  params={"method": "bcos"})
    assert rec["value"] is None and rec["status"] == "unavailable" and record_status(rec) == "unavailable"
    assert rec["reason"] == "GridPG needs >= 4 classes; found 1"
    assert rec["counts"] == {"classes_found": 1, "classes_needed": 4} and rec["params"] == {"method": "bcos"}
    write_records(tmp_path / "u.json", [rec])
    text = (tmp_path / "u.json").read_text()
    assert '"value": null' in text and '"status": "unavailable"' in text
    assert read_records(tmp_path / "u.json") == [rec]
    # one format: the same keys as a measured record plus reason and counts
    ok = make_record("gridpg", 0.5, backbone="b", variant="aloe", dataset="shapes")
    assert set(rec) - set(ok) == {"reason", "counts"} and set(ok) <= set(rec)


def test_record_status_is_checked(tmp_path):
    ok = make_record("lp_top1", 50.0, backbone="b", variant="v", dataset="d")
    legacy = {k: v for k, v in ok.items() if k != "status"}  # records written before the status field
    (tmp_path / "old.json").write_text(json.dumps([legacy]))
    assert record_status(read_records(tmp_path / "old.json")[0]) == "ok"
    bad = [
        (dict(ok, value=None), "finite number"),
        (dict(ok, status="unavailable"), "null is needed"),
        (dict(ok, status="unavailable", value=None), "without a reason"),
        (dict(ok, status="unavailable", value=None, reason="x"), "without counts"),
        (dict(ok, status="skipped"), "unknown status"),
    ]
    for rec, message in bad:
        with pytest.raises(ValueError, match=message):
            write_records(tmp_path / "bad.json", [rec])
        (tmp_path / "bad.json").write_text(json.dumps([ok, rec]))
        with pytest.raises(ValueError, match=f"bad.json.*record 1 .*{message}"):
            read_records(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="needs a reason"):
        make_unavailable_record("gridpg", NotEnoughData(""), backbone="b", variant="v", dataset="d")
