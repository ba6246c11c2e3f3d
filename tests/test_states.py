"""evtools.states has Celery's state names, sets and precedence."""

import itertools

import celery.states as celery_states
import pytest

from evtools import states

NAMES = ["PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "REVOKED", "REJECTED", "RETRY",
         "IGNORED"]
SETS = ["READY_STATES", "UNREADY_STATES", "EXCEPTION_STATES", "PROPAGATE_STATES", "ALL_STATES"]


@pytest.mark.parametrize("name", NAMES + SETS)
def test_names_and_sets_match_celery(name):
    assert getattr(states, name) == getattr(celery_states, name)


def test_precedence_matches_celery_for_every_state_and_a_custom_one():
    for name in NAMES + ["PROGRESS", None]:
        assert states.precedence(name) == celery_states.precedence(name), name


def test_state_comparisons_follow_precedence_like_celery():
    candidates = NAMES + ["PROGRESS"]
    for a, b in itertools.product(candidates, repeat=2):
        ours, theirs = states.state(a), celery_states.state(a)
        assert (ours < b, ours <= b, ours > b, ours >= b) == \
            (theirs < b, theirs <= b, theirs > b, theirs >= b), (a, b)


def test_documented_examples_hold():
    assert states.state(states.PENDING) < states.state(states.SUCCESS)
    assert states.state("PROGRESS") > states.state(states.STARTED)
    assert not states.state("PROGRESS") > states.state(states.SUCCESS)
    assert {states.state("SUCCESS"): 1}["SUCCESS"] == 1
