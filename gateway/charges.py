"""Which job outcomes are charged: one rule for the count slot and the money alike.

The orchestration (orchestrators/generate_video.py `_fail`) asks `charged` whether a job that
ends without a video keeps its slot; the money follows the same answer (the release activity
gives back slot and reservation together, in one transaction; anything not released is settled
as a charge). So counts and money never disagree.

The default policy, and why:
- completed: charged. The provider bills it.
- never accepted upstream for a reason of the gateway's or the provider's (no route, access
  denied, an answer lost, a timeout or a cancel while queued): released. Nothing was made,
  nothing can have been billed, and the app did nothing wrong.
- refused by the provider (its content filter) before accepting: charged by default
  (`charge_refused`), as the count always was: probing the filter must not be free, and some
  providers bill refused requests. An operator whose provider does not bill them sets it false.
- accepted, then failed, timed out or cancelled: charged by default (`charge_failed`): the
  provider may have rendered (and billed) part of it, and the gateway cannot know it did not.
"""

from __future__ import annotations

from gateway.budgets import ChargePolicy

COMPLETED = "completed"
NOT_ACCEPTED = "not_accepted"  # the provider never took the job (gateway's or provider's doing)
REFUSED = "refused"  # the provider refused the request itself, before accepting it
FAILED = "failed"  # the provider accepted it; it ended without a video
OUTCOMES = (COMPLETED, NOT_ACCEPTED, REFUSED, FAILED)


def charged(outcome: str, policy: ChargePolicy) -> bool:
    """Whether a job that ended so keeps its count slot and pays its cost (False: both go back)."""
    if outcome == COMPLETED:
        return True
    if outcome == NOT_ACCEPTED:
        return False
    if outcome == REFUSED:
        return policy.refused
    if outcome == FAILED:
        return policy.failed
    raise ValueError(f"unknown outcome {outcome!r}")
