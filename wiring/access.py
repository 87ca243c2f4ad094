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
    (
        "GET",
        "/01/{gtin}/10/{lot_code}",
    ): "a lot's trace page (GS1 Digital Link on the package): public, no personal data",
    (
        "POST",
        "/v1/webhooks/direct",
    ): "signed with the shop's secret (Standard Webhooks; X-VuonMinh-Signature deprecated)",
    ("POST", "/v1/webhooks/tiktok-shop"): "signed by TikTok Shop (Authorization: HMAC of app key + body)",
    ("POST", "/v1/webhooks/shopee"): "signed by Shopee (Authorization: HMAC of callback URL | body)",
    ("POST", "/v1/webhooks/lazada"): "signed by Lazada (Authorization: HMAC of app key + body)",
    (
        "POST",
        "/v1/carriers/{carrier}/callbacks",
    ): "authenticated by the carrier's shared secret (GHN ?token=, GHTK ?hash=, Viettel Post TOKEN, VNPost bearer)",
    ("GET", "/dashboard/login"): "the dashboard's sign-in form: nothing private",
    ("POST", "/dashboard/login"): "signing in checks the credential it is given (rate-limited by IP)",
    ("POST", "/dashboard/logout"): "forgets the browser's sign-in cookie",
    ("GET", "/dashboard/static/{name}"): "the dashboard's script and charting library: nothing private",
}
