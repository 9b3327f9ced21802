"""The benchmark's quick mode runs as a smoke test (issue 6).

`bench/run --quick` starts a stack of its own (under .work/bench), runs
every scenario at a reduced size and exits 1 when a correctness check
fails: a delivery lost, doubled or out of order, an acknowledged message
missing from Postgres, a client that could not connect, an error answer.
Speed is not judged here, only that the tool works and found nothing
wrong.
"""

import json
import subprocess

from conftest import T, WORK

SCENARIOS = {'broadcast', 'broadcast-small', 'idle', 'chat mix', 'writes',
             'reads (wrk)', 'reads (fixed rate)', 'presence'}


def test_bench_quick_runs_every_scenario_and_finds_nothing_wrong():
    out = WORK / 'bench-results'
    run = subprocess.run([str(T.parent / 'bench' / 'run'), '--quick',
                          '--results', str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:]

    report, = out.glob('*.json')
    data = json.loads(report.read_text())
    assert {row['scenario'] for row in data['rows']} >= SCENARIOS

    # every check ran and each counted nothing
    checks = data['checks']
    assert len(checks) >= 40
    assert [c for c in checks if c[2]] == []
    assert {c[0] for c in checks} >= {'broadcast', 'mix', 'reads'}

    # the deliveries the checks counted did happen
    for phase in data['data']['broadcast']:
        assert phase['lat']['n'] > 0 and phase['achieved'] > 0
    assert data['floor']['write'] > 0
    assert list(out.glob('*.png'))
    assert '0 failed' in next(out.glob('*.md')).read_text()
