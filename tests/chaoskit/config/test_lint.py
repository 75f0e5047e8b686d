from .helpers import check, doc, messages


def has(found, path, fragment):
    return any(p == path and fragment in m for p, m in found)


def warnings_for(spec: str):
    v = check(doc("VirtualService", "reviews", spec))
    assert v.ok, [str(i) for i in v.issues.errors]
    return messages(v, "warning")


def test_retries_that_do_not_fit_the_timeout():
    found = warnings_for("""
        hosts: [reviews]
        http:
        - route: [{destination: {host: reviews, subset: v1}}]
          timeout: 3s
          retries: {attempts: 3, perTryTimeout: 2s}
    """)
    assert has(
        found,
        "spec.http[0].retries.perTryTimeout",
        "4 attempts × perTryTimeout 2s = 8s exceeds the route timeout 3s",
    )


def test_per_try_timeout_not_below_timeout():
    found = warnings_for("""
        hosts: [reviews]
        http:
        - route: [{destination: {host: reviews, subset: v1}}]
          timeout: 1s
          retries: {attempts: 2, perTryTimeout: 1s}
    """)
    assert has(found, "spec.http[0].retries.perTryTimeout", "perTryTimeout 1s >= route timeout 1s")


def test_default_timeout_is_used_for_the_budget():
    found = warnings_for("""
        hosts: [reviews]
        http:
        - route: [{destination: {host: reviews, subset: v1}}]
          retries: {attempts: 4, perTryTimeout: 5s}
    """)
    assert has(found, "spec.http[0].retries.perTryTimeout", "15s (mesh default)")


def test_weights_not_summing_to_100():
    found = warnings_for("""
        hosts: [reviews]
        http:
        - route:
          - {destination: {host: reviews, subset: v1}, weight: 1}
          - {destination: {host: reviews, subset: v2}, weight: 3}
    """)
    assert has(found, "spec.http[0].route", "weights sum to 4, not 100")
    assert has(found, "spec.http[0].route", "25%, 75%")


def test_fault_abort_with_retries():
    found = warnings_for("""
        hosts: [reviews]
        http:
        - fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
          retries: {attempts: 3}
          route: [{destination: {host: reviews, subset: v1}}]
    """)
    assert has(found, "spec.http[0].fault.abort", "never retried")


def test_clean_rules_have_no_warnings():
    assert (
        warnings_for("""
        hosts: [reviews]
        http:
        - match: [{headers: {end-user: {exact: jason}}}]
          route: [{destination: {host: reviews, subset: v2}}]
        - route:
          - {destination: {host: reviews, subset: v1}, weight: 80}
          - {destination: {host: reviews, subset: v3}, weight: 20}
          timeout: 3s
          retries: {attempts: 2, perTryTimeout: 1s}
    """)
        == []
    )
