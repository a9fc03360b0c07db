"""train.max_failures: the faults a run survives, and the message of the one that stops it."""
from __future__ import annotations

import pytest

from actors.learner_group import LearnerRankLost
from orchestrator.training.faults import FaultBudget, RunFailed


def test_zero_budget_stops_at_the_first_fault_naming_rank_and_cause():
    lost = LearnerRankLost(1, "learner rank 1 was lost during 'train step 2': ActorDiedError: killed by SIGKILL")
    with pytest.raises(RunFailed, match=r"learner rank 1 was lost .*ActorDiedError.*train.max_failures=0"):
        FaultBudget(0).record("learner", str(lost))


def test_budget_counts_every_kind_of_fault():
    budget = FaultBudget(2)
    budget.record("checkpoint", "checkpoint s3://b/ckpt-00000004 was not written completely")
    event = budget.record("learner", "learner rank 0 was lost")
    event.update(recovery_s=1.0, resumed_from_step=3)
    assert [e["kind"] for e in budget.events] == ["checkpoint", "learner"]
    with pytest.raises(RunFailed, match="fault 3 of a budget of train.max_failures=2"):
        budget.record("learner", "learner rank 1 was lost")
