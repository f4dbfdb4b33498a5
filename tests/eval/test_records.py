import json
import math

import pytest

from aloe.eval.records import RECORD_KEYS, code_version, make_record, read_records, write_record, write_records


def test_write_and_read_records(tmp_path):
    path = tmp_path / "res" / "lp.json"
    rec = write_record(path, "lp_top1", 81.25, backbone="vit_b16", variant="aloe", dataset="cifar10",
                       params={"iterations": 100})
    assert json.loads(path.read_text()) == [rec]
    assert read_records(path) == [rec]
    assert set(rec) == set(RECORD_KEYS) and rec["value"] == 81.25 and rec["code_version"] == code_version()
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
