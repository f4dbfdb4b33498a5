"""A stand-in outside world for the paper preset, so that the paper study's own rules, names and
tables run end to end offline on a few CPU cores (``python -m aloe.rehearsal DIR``).

Data side: ``eval_data.write_eval_datasets`` (small local copies of the 11 evaluation datasets
with their real class counts, in the layouts the preparers read), ``web.write_url_lists``
(a served folder of JPEGs and url lists in the real column layout) and ``serve`` (that folder
over HTTP on a fixed port for the duration of a run).
"""
