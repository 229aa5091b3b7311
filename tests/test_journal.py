"""Score journals (metarepro/journal.py): a stopped evaluation resumes where it stopped, with the scores an unstopped one
gives; a journal of another identity or a torn file is never mixed in; vinyals2016-table1's cells resume from theirs."""

import json
import math

import numpy as np
import pytest
import torch

from benchmarks.harness.cli import main
from metarepro.journal import ScoreJournal, state_digest


class Stop(Exception):
    pass


def _scorer(stop_after: int | None = None):
    calls = []

    def score(episode):
        if stop_after is not None and len(calls) == stop_after:
            raise Stop
        calls.append(episode)
        return math.nan if episode == 3 else episode**0.5  # one diverged episode: NaN survives the round trip

    return score, calls


def test_a_stopped_series_resumes_at_the_first_unscored_episode_with_the_unstopped_scores(tmp_path):
    episodes = list(range(10))
    oracle = np.array([math.nan if e == 3 else e**0.5 for e in episodes])
    path = tmp_path / "evaluation-cell.json"
    score, calls = _scorer(stop_after=6)
    with pytest.raises(Stop):
        ScoreJournal(path, {"config": 1}, save_every_s=0.0).scores("test", episodes, score)
    assert calls == list(range(6)) and json.loads(path.read_text())["series"]["test"][3] is None

    resumed = ScoreJournal(path, {"config": 1})
    assert resumed.resumed == 6 and resumed.elapsed_s > 0
    score, calls = _scorer()
    got = resumed.scores("test", episodes, score)
    assert calls == [6, 7, 8, 9]  # only the episodes the stopped run had not scored
    np.testing.assert_array_equal(got, oracle)  # NaN where the oracle has NaN
    score, calls = _scorer()
    np.testing.assert_array_equal(ScoreJournal(path, {"config": 1}).scores("test", episodes, score), oracle)
    assert calls == []  # a finished series is read, not re-scored


def test_a_journal_of_another_identity_or_a_torn_file_is_started_afresh(tmp_path):
    path = tmp_path / "evaluation-cell.json"
    score, _ = _scorer()
    ScoreJournal(path, {"model": "a"}).scores("test", range(4), score, total=4)
    assert ScoreJournal(path, {"model": "b"}).resumed == 0
    assert ScoreJournal(path, {"model": "a"}).resumed == 4
    path.write_text('{"version": 1, "identity": ')  # torn (e.g. written by something else)
    score, calls = _scorer()
    assert ScoreJournal(path, {"model": "a"}).scores("test", range(4), score, total=4)[2] == 2**0.5 and len(calls) == 4


def test_a_series_whose_episodes_changed_under_the_same_identity_is_refused(tmp_path):
    path = tmp_path / "evaluation-cell.json"
    score, _ = _scorer()
    ScoreJournal(path, {}).scores("test", range(5), score)
    with pytest.raises(ValueError, match="5 scores for 3 episodes"):
        ScoreJournal(path, {}).scores("test", range(3), score)


def test_state_digest_names_the_weights_not_the_module_object():
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    b = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    b.load_state_dict(a.state_dict())
    assert state_digest(a) == state_digest(b) != state_digest(None)
    with torch.no_grad():
        b[0].weight[0, 0] += 1e-7  # one float32 ulp-sized change of one weight
    assert state_digest(a) != state_digest(b)
    b.load_state_dict(a.state_dict())
    b[1].running_mean += 1.0  # a buffer counts too (BN statistics change the scores)
    assert state_digest(a) != state_digest(b)


def test_vinyals_fine_tuning_cell_resumes_from_its_journal(isolated_results):
    """A smoke fine-tuning cell's journal, cut short as a stopped run leaves it and with a marked score: the rerun takes the
    journal's scores (the mark appears in the record), scores only the rest, and equals the uninterrupted record."""
    cell = ["--cells", "Baseline classifier (fine-tuned)/5-way 1-shot"]
    run = ["reproduce", "vinyals2016-table1", "--scale", "smoke", "--jobs", "1", "--no-progress", *cell]
    assert main(run) == 0
    record_path = next((isolated_results / "reproduced" / "vinyals2016-table1" / "smoke").glob("*.json"))
    first = json.loads(record_path.read_text())
    journal_path = next((isolated_results.parent / "runs").rglob("evaluation-*fine-tuned*.json"))
    journal = json.loads(journal_path.read_text())
    assert journal["series"]["test"] == pytest.approx(first["scores"])
    grid = [k for k in journal["series"] if k.startswith("validation")]
    assert len(grid) == len(first["config"]["finetune_grid"]) and "evaluation_resumed_scores" not in first

    kept = 2
    journal["series"]["test"] = journal["series"]["test"][:kept]
    journal["series"]["test"][0] = 12.345  # a mark: no episode of fewer than 2000 queries scores 12.345 %
    journal_path.write_text(json.dumps(journal))
    record_path.unlink()
    assert main(run) == 0
    second = json.loads(record_path.read_text())
    assert second["evaluation_resumed_scores"] == kept + sum(len(journal["series"][k]) for k in grid)
    assert second["scores"][0] == 12.345 and second["scores"][1:] == pytest.approx(first["scores"][1:])


def test_a_stop_request_ends_the_series_after_the_episode_at_hand_with_its_score_saved(tmp_path):
    """What SIGTERM does in a worker (trainer.request_stop): the journal holds every finished episode, saved at once even
    though its periodic save is far off, and the run stops with KeyboardInterrupt."""
    from metarepro import trainer

    path = tmp_path / "evaluation-cell.json"

    def score(episode):
        if episode == 4:
            trainer.request_stop()  # arrives while episode 4 is scored
        return float(episode)

    try:
        with pytest.raises(KeyboardInterrupt):
            ScoreJournal(path, {}, save_every_s=3600.0).scores("test", range(10), score, total=10)
    finally:
        trainer._stop_requested = False
    assert json.loads(path.read_text())["series"]["test"] == [0.0, 1.0, 2.0, 3.0, 4.0]
