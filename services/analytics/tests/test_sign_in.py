"""A person signs in to the dashboard in a browser: the credential rides in an HttpOnly cookie that
only reads. Rules over HTTP here; the real browser in test_dashboard.py."""

from __future__ import annotations

import httpx
import pytest

from vuonminh.analytics.tests.conftest import BINH_LU, analytics_alone
from vuonminh.shared.auth import SESSION_COOKIE, Role
from vuonminh.wiring.testing import auth_headers

HTML = {"Accept": "text/html,application/xhtml+xml"}
DAYS = {"from": "2026-11-01", "to": "2026-11-20"}


def credential_of(role: Role, **scope) -> str:
    return auth_headers(role, **scope)["Authorization"].removeprefix("Bearer ")


@pytest.fixture
async def anonymous(tmp_path):
    async with analytics_alone(tmp_path) as (client, _platform):
        # The fixture's client calls as the operator: these tests call as nobody unless they sign in.
        client.headers.pop("Authorization")
        yield client


async def test_a_browser_without_credentials_is_sent_to_the_sign_in_page(anonymous):
    page = await anonymous.get(f"/dashboard/communes/{BINH_LU}?on=2026-11-20", headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == f"/dashboard/login?next=%2Fdashboard%2Fcommunes%2F{BINH_LU}%3Fon%3D2026-11-20"
    # A program (no HTML asked) gets the API's 401.
    assert (await anonymous.get(f"/dashboard/communes/{BINH_LU}")).status_code == 401
    form = await anonymous.get("/dashboard/login", params={"next": f"/dashboard/communes/{BINH_LU}"})
    assert form.status_code == 200 and "Mã truy cập" in form.text and f"/dashboard/communes/{BINH_LU}" in form.text


async def test_signing_in_sets_a_read_only_cookie_and_goes_back(anonymous):
    official = credential_of(Role.commune_official, ward_codes={BINH_LU})
    signed = await anonymous.post(
        "/dashboard/login",
        data={"credential": official, "next": f"/dashboard/communes/{BINH_LU}"},
    )
    assert signed.status_code == 303 and signed.headers["location"] == f"/dashboard/communes/{BINH_LU}"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Max-Age=43200" in cookie

    # The cookie reads what the credential may read, and nothing else.
    assert (await anonymous.get(f"/dashboard/communes/{BINH_LU}", headers=HTML)).status_code == 200
    assert (await anonymous.get(f"/v1/kpis/communes/{BINH_LU}", params=DAYS)).status_code == 200
    assert (await anonymous.get("/v1/kpis/communes/05503", params=DAYS)).status_code == 404  # another commune
    # It never writes: a cross-site form could not use it, nor can anything else.
    target = {"core_sellers_target": 3, "due_on": "2026-12-31"}
    assert (await anonymous.put(f"/v1/kpis/communes/{BINH_LU}/core-seller-target", json=target)).status_code == 401

    out = await anonymous.post("/dashboard/logout")
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    assert (await anonymous.get(f"/v1/kpis/communes/{BINH_LU}", params=DAYS)).status_code == 401


async def test_without_a_page_to_go_back_to_a_person_lands_on_their_own(anonymous):
    province = credential_of(Role.province_official, province_codes={"12"})
    signed = await anonymous.post("/dashboard/login", data={"credential": province, "next": "https://evil.example/"})
    assert (
        signed.status_code == 303 and signed.headers["location"] == "/dashboard/provinces/12"
    )  # not the open redirect
    seller = credential_of(Role.seller, seller_ids={"co-ba-hong"})
    signed = await anonymous.post("/dashboard/login", data={"credential": seller, "next": "//evil.example/x"})
    assert signed.headers["location"] == "/dashboard/sellers/co-ba-hong"


@pytest.mark.parametrize(
    ("credential", "status", "message"),
    [
        ("", 401, "Hãy nhập mã truy cập."),
        ("vmk_nope_nope", 401, "Mã truy cập không hợp lệ"),
        ("not-a-token", 401, "Mã truy cập không hợp lệ"),
        (credential_of(Role.carrier, carrier="ghtk"), 403, "không dùng để xem bảng số liệu"),
    ],
    ids=["empty", "unknown-key", "garbage", "carrier"],
)
async def test_a_bad_credential_shows_the_form_again_with_the_reason(anonymous, credential, status, message):
    answer = await anonymous.post("/dashboard/login", data={"credential": credential})
    assert answer.status_code == status and message in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert 'name="credential"' in answer.text


async def test_the_cookie_of_a_revoked_or_broken_credential_reads_nothing(anonymous):
    anonymous.cookies.set(SESSION_COOKIE, "vmk_nope_nope")
    assert (await anonymous.get(f"/v1/kpis/communes/{BINH_LU}", params=DAYS)).status_code == 401
    assert (await anonymous.get(f"/dashboard/communes/{BINH_LU}", headers=HTML)).status_code == 303
    assert isinstance(anonymous, httpx.AsyncClient)
