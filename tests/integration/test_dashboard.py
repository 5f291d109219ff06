"""The fleet dashboard (docs/dashboard.md) in a real browser: headless
Chromium driven by Selenium against the real cloud of the end-to-end lab,
while a real agent onboards through squid. Login with an admin token, the
device moving through its stages without a reload, an alarm appearing, a
filter, the device's journey, the sites page that never shows a secret,
logout. Screenshots go to BUILD/screenshots/. Plus the session's rules,
checked without a browser: cookie flags, CSRF, logout ends the session."""
import http.client
import json
import os
import ssl
import subprocess

import pytest

from conftest import BUILD, free_port, program
from e2elab import Agent, wait_until

SERIAL = "SSR1000-UI-0001"
SHOTS = os.path.join(BUILD, "screenshots")

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service as ChromeService  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture
def lab(e2e_lab):
    e2e_lab.start_squid()
    e2e_lab.start_all()
    e2e_lab.state = e2e_lab.provision(SERIAL)
    e2e_lab.operators(SERIAL)
    return e2e_lab


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps"):
        opts.add_argument(arg)
    # The lab's cloud has a certificate from the lab's own CA.
    opts.accept_insecure_certs = True
    driver = webdriver.Chrome(service=ChromeService("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(30)
    os.makedirs(SHOTS, exist_ok=True)
    yield driver
    driver.quit()


def admin_token(lab):
    with open(lab.cloud_token) as f:
        return f.read().strip()


def shot(driver, name):
    driver.save_screenshot(os.path.join(SHOTS, f"dashboard-{name}.png"))


def wait(driver, what, predicate, timeout=60):
    """Waits for predicate; the page re-renders every few seconds, so an element
    found a moment ago may be gone: that is only a reason to look again."""
    WebDriverWait(driver, timeout, poll_frequency=0.3,
                  ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: predicate(d), message=f"timed out waiting for {what}")


def click_device_link(driver):
    """Clicks the device's link in the devices table (found again if re-rendered)."""
    def click(d):
        row = device_row(d)
        if row is None:
            return False
        row[0].find_element(By.TAG_NAME, "a").click()
        return True
    wait(driver, "the device's link", click)


def device_row(driver):
    rows = driver.find_elements(By.CSS_SELECTOR, f'#devices tr[data-serial="{SERIAL}"]')
    return rows[0].find_elements(By.TAG_NAME, "td") if rows else None


def confirm_alarm_action(driver, button_id, says):
    """Clicks an alarm's button (found again if re-rendered) and confirms the dialog."""
    def click(d):
        buttons = d.find_elements(By.ID, button_id)
        if not buttons:
            return False
        buttons[0].click()
        return True
    wait(driver, button_id, click)
    wait(driver, "the confirmation", lambda d: d.find_element(By.ID, "confirm").is_displayed())
    assert says in driver.find_element(By.ID, "confirm-text").text
    driver.find_element(By.ID, "confirm-ok").click()


def login(driver, lab):
    driver.get(f"{lab.cloud_url}/ui/")
    wait(driver, "the login form", lambda d: d.find_element(By.ID, "login-page").is_displayed())
    field = driver.find_element(By.ID, "token")
    assert field.get_attribute("type") == "password"
    field.send_keys(admin_token(lab))
    shot(driver, "login")
    driver.find_element(By.ID, "login-button").click()
    wait(driver, "the fleet page", lambda d: d.find_element(By.ID, "fleet-page").is_displayed())


def test_an_operator_watches_a_router_onboard(lab, browser):
    token = admin_token(lab)
    login(browser, lab)
    # The token went once and is nowhere now: not in the URL, the page, or a cookie.
    assert token not in browser.current_url and token not in browser.page_source
    cookie = browser.get_cookie("onramp_ui")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert all(token not in c["value"] for c in browser.get_cookies())
    assert "logged in as admin" in browser.find_element(By.ID, "who").text

    wait(browser, "the claimed device", lambda d: device_row(d) and
         device_row(d)[2].text == "claimed")
    shot(browser, "fleet-claimed")
    # The page is never reloaded from here on: this mark would be gone.
    browser.execute_script("window.onrampTestMark = 42;")

    # A filter that matches nothing, then one that matches.
    serial_filter = browser.find_element(By.ID, "f-serial")
    serial_filter.send_keys("no-such-serial")
    wait(browser, "the filter", lambda d: "no device matches" in
         d.find_element(By.ID, "devices").text)
    serial_filter.clear()
    serial_filter.send_keys("UI-0001")
    wait(browser, "the device again", lambda d: device_row(d) is not None)
    Select(browser.find_element(By.ID, "f-site")).select_by_visible_text("acme/paris")

    # A router with two proxies, one of them dead: it onboards through squid and
    # reports the dead one's alarm.
    dead = free_port()
    agent = Agent(lab, lab.state)
    with open(agent.conf) as f:
        text = f.read()
    squid = f"static = {lab.squid['listen']}:{lab.squid['port']}\n"
    with open(agent.conf, "w") as f:
        f.write(text.replace(squid, squid + f"static = 127.0.0.1:{dead}\n"))
    agent.start()

    wait(browser, "the device to move past claimed", lambda d: device_row(d) and
         device_row(d)[2].text not in ("claimed", ""), timeout=90)
    wait(browser, "the proxy alarm", lambda d: f"127.0.0.1:{dead}" in
         d.find_element(By.ID, "alarms").text, timeout=90)
    alarms = browser.find_element(By.ID, "alarms").text
    assert "critical" in alarms and "unreachable" in alarms
    shot(browser, "fleet-alarm")
    agent.wait_done("production-info", timeout=90)
    assert browser.execute_script("return window.onrampTestMark;") == 42

    # Issue 14 point 7: the operator acknowledges the alarm, then clears it, each after a
    # confirmation; the CLI sees the same, and the audit has both.
    alarm = [a for a in lab.cloud_json("alarm", "list")["alarms"]
             if f"127.0.0.1:{dead}" in a["alarm"]][0]
    assert alarm["serial"] == SERIAL and alarm["acknowledged"] is None
    confirm_alarm_action(browser, f"alarm-ack-{alarm['id']}", "Acknowledge the alarm")
    wait(browser, "the alarm acknowledged", lambda d: "by admin" in
         d.find_element(By.ID, "alarms").text)
    acked = [a for a in lab.cloud_json("alarm", "list")["alarms"] if a["id"] == alarm["id"]]
    assert acked and acked[0]["acknowledged"]["by"] == "admin"
    shot(browser, "fleet-alarm-acknowledged")
    confirm_alarm_action(browser, f"alarm-clear-{alarm['id']}", "Clear the alarm")
    wait(browser, "the alarm cleared", lambda d: f"127.0.0.1:{dead}" not in
         d.find_element(By.ID, "alarms").text)
    assert alarm["id"] not in [a["id"] for a in lab.cloud_json("alarm", "list")["alarms"]]
    history = lab.cloud_json("alarm", "list", "--history")["alarms"]
    assert [(h["id"], h["serial"], h["cleared"]["by"], h["acknowledged"]["by"])
            for h in history] == [(alarm["id"], SERIAL, "admin", "admin")]
    assert f"{alarm['id']}" in lab.cloud("alarm", "list", "--history")
    entries = lab.cloud_json("audit")["entries"]
    for action in ("ack", "clear"):
        assert any(e["action"] == f"POST /v1/admin/alarms/{alarm['id']}/{action}" and
                   e["actor"] == "admin" and e["result"] == "ok" for e in entries), action
    cloud = [program("onrampctl"), "cloud", "--url", lab.cloud_url, "--ca", lab.cloud_pki.ca]
    for words, code in ((["alarm", "clear", str(alarm["id"])], 2),  # not active any more
                        (["alarm", "ack", "x1"], 2), (["alarm", "ack", "999999999"], 2)):
        proc = subprocess.run(cloud + ["--token-file", lab.cloud_token] + words,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == code, (words, proc.stderr)
    wrong = os.path.join(lab.dir, "wrong.token")
    with open(wrong, "w") as f:
        f.write("ab" * 32 + "\n")
    proc = subprocess.run(cloud + ["--token-file", wrong, "alarm", "list"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr

    # The device's page: its journey, step by step, with the proxy diagnostics.
    click_device_link(browser)
    wait(browser, "the device page", lambda d: d.find_element(By.ID, "device-page")
         .is_displayed() and "staging-connect" in d.find_element(By.ID, "timeline").text)
    facts = browser.find_element(By.ID, "device-facts").text
    assert SERIAL in facts and "acme/paris" in facts and "127.0.0.1" in facts
    assert f"127.0.0.1:{dead}" in facts  # proxy diagnostics
    timeline = browser.find_element(By.ID, "timeline").text
    for step in ("phone-home", "cloud-auth", "staging-connect", "certificate"):
        assert step in timeline
    shot(browser, "device")

    # An operator's action with its confirmation: the asset ID the cloud tells the router.
    browser.find_element(By.ID, "act-asset").click()
    field = browser.find_element(By.ID, "asset-id")
    field.send_keys("PARIS-EDGE-7")
    field.submit()
    wait(browser, "the confirmation", lambda d: d.find_element(By.ID, "confirm").is_displayed())
    assert "PARIS-EDGE-7" in browser.find_element(By.ID, "confirm-text").text
    browser.find_element(By.ID, "confirm-ok").click()
    wait(browser, "the new asset ID", lambda d: "PARIS-EDGE-7" in
         d.find_element(By.ID, "device-facts").text)
    assert lab.cloud_json("device", "show", SERIAL)["asset_id"] == "PARIS-EDGE-7"

    # Sites: the secret is set, and never shown.
    browser.find_element(By.ID, "nav-sites").click()
    wait(browser, "the sites page", lambda d: "acme/paris" in d.find_element(By.ID, "sites").text)
    sites = browser.find_element(By.ID, "sites").text
    assert "set" in sites and "ready" in sites
    for secret in lab.secrets():
        assert secret.decode() not in browser.page_source
    shot(browser, "sites")

    # The audit: this session's login and the operators' changes, chained.
    browser.find_element(By.ID, "nav-audit").click()
    wait(browser, "the audit page", lambda d: "POST /ui/api/login" in
         d.find_element(By.ID, "audit").text)
    audit_text = browser.find_element(By.ID, "audit").text
    assert "POST /v1/admin/claims" in audit_text and "201 ok" in audit_text
    assert "verifies" in browser.find_element(By.ID, "audit-verdict").text
    assert token not in browser.page_source
    shot(browser, "audit")

    # A phone's width: the page still reads.
    browser.set_window_size(390, 844)
    browser.find_element(By.ID, "nav-fleet").click()
    wait(browser, "the fleet page", lambda d: device_row(d) is not None)
    shot(browser, "fleet-phone")
    browser.set_window_size(1280, 1000)

    browser.find_element(By.ID, "logout").click()
    wait(browser, "the login page", lambda d: d.find_element(By.ID, "login-page").is_displayed())
    assert browser.get_cookie("onramp_ui") is None
    browser.get(f"{lab.cloud_url}/ui/")
    wait(browser, "the login page after logout",
         lambda d: d.find_element(By.ID, "login-page").is_displayed())
    shot(browser, "logged-out")
    agent.stop()


def test_the_fleet_page_shows_a_refused_asset_id_until_the_router_is_added(e2e_lab, browser):
    """The staging operator forgot the router: the conductor refuses the device's
    asset ID (403 unknown-asset), the agent raises its alarm and reports it, and the
    fleet page lists it for the device, naming the asset ID and the conductor, until
    `onrampctl conductor router add` lets the router in and the agent clears it."""
    lab = e2e_lab
    lab.start_squid()
    lab.start_all()
    state = lab.provision(SERIAL)
    lab.operators(SERIAL, staging_router=False)
    login(browser, lab)
    Agent(lab, state).start()
    where = f"asset ID {SERIAL} at conductor 127.0.0.1:{lab.staging.port}"
    wait(browser, "the unknown-asset alarm", lambda d: where in
         d.find_element(By.ID, "alarms").text, timeout=90)
    alarms = browser.find_element(By.ID, "alarms").text
    assert "conductor does not know the asset ID" in alarms and "major" in alarms
    shot(browser, "fleet-unknown-asset")
    lab.staging.add_router("r1", SERIAL)
    wait(browser, "the alarm cleared by the agent", lambda d: where not in
         d.find_element(By.ID, "alarms").text, timeout=90)


def request(lab, method, path, body=None, headers=None):
    """One HTTPS request to the lab's cloud: (status, headers, parsed body)."""
    ctx = ssl.create_default_context(cafile=lab.cloud_pki.ca)
    conn = http.client.HTTPSConnection("127.0.0.1", lab.cloud_port, context=ctx, timeout=20)
    data = json.dumps(body) if body is not None else None
    hdrs = {"Content-Type": "application/json"} if data else {}
    hdrs.update(headers or {})
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = raw
    return resp.status, resp, doc


def test_sessions_keep_their_rules(e2e_lab):
    lab = e2e_lab
    lab.start_redirector()
    lab.start_cloud()
    # Pages are served with a strict policy.
    status, resp, page = request(lab, "GET", "/ui/")
    assert status == 200 and b"<title>onramp fleet</title>" in page
    assert "frame-ancestors 'none'" in resp.getheader("Content-Security-Policy")
    assert resp.getheader("X-Content-Type-Options") == "nosniff"
    # A wrong token opens nothing.
    status, _, doc = request(lab, "POST", "/ui/api/login", {"token": "0" * 64})
    assert status == 401 and doc["error"]["code"] == "unauthorized"
    status, resp, doc = request(lab, "POST", "/ui/api/login", {"token": admin_token(lab)})
    assert status == 200 and len(doc["csrf"]) == 64
    set_cookie = resp.getheader("Set-Cookie")
    for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert flag in set_cookie
    cookie = {"Cookie": set_cookie.split(";")[0]}
    csrf = doc["csrf"]
    # The session reads the admin API...
    status, _, doc = request(lab, "GET", "/v1/admin/fleet", headers=cookie)
    assert status == 200 and "stages" in doc and "alarms" in doc
    # ...but changes nothing without its CSRF token, and nothing with another one.
    body = {"name": "forged"}
    status, _, doc = request(lab, "POST", "/v1/admin/organizations", body, headers=cookie)
    assert status == 403 and doc["error"]["code"] == "csrf"
    status, _, doc = request(lab, "POST", "/v1/admin/organizations", body,
                             headers=dict(cookie, **{"X-CSRF-Token": "f" * 64}))
    assert status == 403
    assert "forged" not in lab.cloud("org", "list")
    status, _, doc = request(lab, "POST", "/v1/admin/organizations", body,
                             headers=dict(cookie, **{"X-CSRF-Token": csrf}))
    assert status == 201
    # Logout ends it for good: the same cookie opens nothing afterwards.
    status, _, _ = request(lab, "POST", "/ui/api/logout",
                           headers=dict(cookie, **{"X-CSRF-Token": csrf}))
    assert status == 200
    status, _, doc = request(lab, "GET", "/v1/admin/fleet", headers=cookie)
    assert status == 401 and doc["error"]["code"] == "session-expired"
