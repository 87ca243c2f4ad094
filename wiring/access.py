"""The routes that answer without credentials, on purpose: the one list the route-walk test
(tests/kit/test_access_routes.py) checks every service's OpenAPI against.

Every other route declares its callers with `require(...)` (vuonminh.shared.auth). A route added
here needs a reason: a signature of its own (webhooks, carrier callbacks), or a page that is public
by design and shows no personal data (it uses the `public` dependency: rate-limited by IP).
"""

from __future__ import annotations

# (method, path as in the OpenAPI document) -> why it needs no bearer credential.
PUBLIC_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe",
    ("GET", "/readyz"): "readiness probe",
    ("POST", "/v1/webhooks/direct"): "signed with the shop's secret (X-VuonMinh-Signature)",
    (
        "GET",
        "/01/{gtin}/10/{lot_code}",
    ): "a lot's trace page (GS1 Digital Link on the package): public, no personal data",
    ("GET", "/dashboard/static/{name}"): "the dashboard's script and charting library: nothing private",
}
