"""The hostile corpus, counted: at least 150 cases, each id unique, by kind of input.

Run ``pytest tests/reliability/test_hostile_corpus.py -s`` to print the counts.
"""

from __future__ import annotations

from collections import Counter

from tests.reliability import test_hostile_api, test_hostile_cli, test_hostile_data, test_hostile_files

TABLES = {
    "files": test_hostile_files.ALL,
    "data": test_hostile_data.ALL,
    "command line": test_hostile_cli.CONFIG_CASES + test_hostile_cli.FLAG_CASES,
    "API arguments": test_hostile_api.DATA_CASES + test_hostile_api.IMAGE_CASES + test_hostile_api.PATH_CASES,
}
PROCESS_TESTS = 2  # tests/reliability/test_hostile_processes.py (three refused processes, one stale lock)


def test_the_corpus_has_at_least_150_distinct_cases():
    ids = [param.id for table in TABLES.values() for param in table]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    kinds = Counter(i.split("/")[0] for i in ids)
    print(f"\n{len(ids)} cases in {len(kinds)} kinds (+ {PROCESS_TESTS} process tests)")
    for table, params in TABLES.items():
        print(f"  {table}: {len(params)}")
    for kind, count in sorted(kinds.items()):
        print(f"    {kind:12s} {count}")
    assert len(ids) >= 150
    assert all(len(params) >= 30 for params in TABLES.values())
