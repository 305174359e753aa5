"""The corridor domain against attnq's domain contract: one pytest case per check."""

from attnq.testing import parametrize_with_checks


@parametrize_with_checks(["corridor"])
def test_corridor_meets_the_domain_contract(task, check):
    check(task)
