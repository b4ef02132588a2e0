"""Step 8, reports: ``summary.json`` (data), ``matrix.html`` (people), shard merging. JUnit XML is pytest's own.

Written by ``fixtures/reporting.py`` into ``<reports>/`` (``--katatest-reports DIR``, default ``<rootdir>/reports``)
when a run has matrix-cell tests (or ``--shard``/``--katatest-reports`` is given). Inputs per test item:
``user_properties`` ``katatest_cell``, ``katatest_group``, ``katatest_cell_dims`` (JSON); artifacts are the files
under ``<reports>/cells/<cell>/``. Outcomes: failed > error > passed > skipped (a failing setup/teardown is error).
pytest's ``--junitxml`` writes every ``user_properties`` pair as ``<properties><property .../>`` of the
``<testcase>`` (also with the default ``junit_family=xunit2``), so cell and group are in the JUnit too.
"""
