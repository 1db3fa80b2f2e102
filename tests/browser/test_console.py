"""The web console in headless Chromium, against the real `disksnap serve`.

One server (tests/python/conftest.py's Server: accounts alice and bob with keys for every
dialect) and one browser for the module; the tests run in file order and build on each other:
alice signs in, makes a volume, writes bytes into its file, takes two points, sees the chain
drawn, rolls back from the picture and checks the bytes, deletes and recovers a point, watches
a job's progress move, sees an action fail in words; then bob signs in with a key pair and
sees none of it.
"""
import hashlib
import importlib.util
import os
import re
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By

_spec = importlib.util.spec_from_file_location(
    "dialect_conftest", os.path.join(os.path.dirname(__file__), "..", "python", "conftest.py"))
dialects = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dialects)

MIB = 1 << 20
SHOTS = os.environ.get("DISKSNAP_BROWSER_SHOTS")


@pytest.fixture(scope="module")
def server():
    s = dialects.Server(tls=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,1000", "--disable-extensions",
              # The server's TLS listener uses its generated development certificate.
              "--ignore-certificate-errors"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=DriverService(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")),
                         options=opts)
    d.implicitly_wait(0)
    yield d
    d.quit()


class State:
    """What earlier tests made, for the later ones."""
    volume = None
    path = None
    first = None
    second = None
    first_bytes = None
    second_bytes = None
    job = None


def wait(cond, what, timeout=60, every=0.1):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(every)


def q(d, css):
    return d.find_element(By.CSS_SELECTOR, css)


def qs(d, css):
    return d.find_elements(By.CSS_SELECTOR, css)


def flash(d):
    els = qs(d, "#flash")
    return els[0].text if els else ""


def shot(d, name, scroll_to=None):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        if scroll_to:
            d.execute_script("document.querySelector(arguments[0]).scrollIntoView()", scroll_to)
        d.save_screenshot(os.path.join(SHOTS, name + ".png"))


def click_through(d, css):
    """Click what loads a new page, and wait until the new page is there."""
    d.execute_script("window.__old_page = true")
    q(d, css).click()
    wait(lambda: d.execute_script("return !window.__old_page && document.readyState === 'complete'"),
         "the next page after clicking " + css)


def sign_in(d, server, user, password):
    d.get(server.url + "/console/login")
    q(d, "#user").send_keys(user)
    q(d, "#password").send_keys(password)
    click_through(d, "#signin")


def wait_flash_job(d, timeout=120):
    """Wait until the job of the page's flash message ends (its live bar says so); returns its status."""
    return wait(lambda: q(d, "#flash .job").get_attribute("data-done") == "1"
                and q(d, "#flash .job .status").text, "the job in the flash to end", timeout)


def write_at(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(8 * MIB), b""):
            h.update(block)
    return h.hexdigest()


def test_a_wrong_password_is_refused(server, browser):
    sign_in(browser, server, "alice", "not-alice's-password")
    assert "Wrong user name or password" in flash(browser)
    assert browser.current_url.endswith("/console/login")
    browser.get(server.url + "/console/volumes")
    assert browser.current_url.endswith("/console/login"), "no session after a wrong password"


def test_sign_in_with_the_openstack_user(server, browser):
    user, password = dialects.ACCOUNTS["alice"]["openstack"][2:4]
    sign_in(browser, server, user, password)
    wait(lambda: browser.current_url.endswith("/console/"), "the overview")
    assert q(browser, "#account").text == "alice"
    # The session cookie is out of the page's reach (HttpOnly).
    assert "ds_session" not in browser.execute_script("return document.cookie")
    assert any(c["name"] == "ds_session" and c["httpOnly"] and c.get("sameSite") == "Strict"
               for c in browser.get_cookies())


def test_a_forged_csrf_token_is_refused(server, browser):
    browser.get(server.url + "/console/volumes")
    q(browser, "#new-name").send_keys("forged")
    browser.execute_script(
        "document.querySelector('form[action=\"/console/volumes\"] input[name=csrf]').value = 'f'.repeat(64)")
    click_through(browser, "#create-volume")
    assert "security token" in q(browser, "#flash").text
    browser.get(server.url + "/console/volumes")
    assert "forged" not in q(browser, "#volumes").text


def test_create_a_volume_and_write_bytes(server, browser):
    browser.get(server.url + "/console/volumes")
    q(browser, "#new-name").send_keys("web")
    q(browser, "#new-size").clear()
    q(browser, "#new-size").send_keys("1")
    q(browser, "#new-kind option[value=system]").click()
    click_through(browser, "#create-volume")
    assert wait_flash_job(browser) == "successful"
    State.volume = q(browser, "#volume-id").text
    assert re.fullmatch(r"vol-[0-9a-z]{8}", State.volume)
    State.path = q(browser, "#path").text
    assert os.path.exists(State.path)
    # Every dialect's spelling of the id, each with a copy button.
    ids = q(browser, "details.ids")
    ids.click()
    texts = ids.text
    suffix = State.volume[4:]
    assert f"d-{suffix}" in texts and f"disk-{suffix}" in texts and "-0000-4000-8000-" in texts
    assert len(qs(browser, "details.ids button.copy")) == 4
    write_at(State.path, 0, dialects.pattern("first", 4 * MIB))
    write_at(State.path, 700 * MIB, dialects.pattern("first-far", MIB))
    State.first_bytes = digest(State.path)


def take_snapshot(d, name):
    q(d, "#snap-name").send_keys(name)
    click_through(d, "#take-snapshot")
    assert "Taking snapshot" in flash(d)
    assert wait_flash_job(d) == "successful"
    return re.search(r"ss-[0-9a-z]{8}", flash(d)).group(0)


def test_two_snapshots_are_drawn_as_one_chain(server, browser):
    browser.get(server.url + f"/console/volumes/{State.volume}")
    State.first = take_snapshot(browser, "one")
    write_at(State.path, 0, dialects.pattern("second", 2 * MIB))
    write_at(State.path, 900 * MIB, dialects.pattern("second-far", MIB))
    assert digest(State.path) != State.first_bytes
    State.second = take_snapshot(browser, "two")
    State.second_bytes = digest(State.path)
    browser.get(server.url + f"/console/volumes/{State.volume}")
    points = qs(browser, "svg.chains a.point")
    assert [p.get_attribute("data-snapshot") for p in points] == [State.first, State.second]
    first, second = points
    assert first.get_attribute("data-kind") == "full" and second.get_attribute("data-kind") == "incremental"
    assert "is-head" in second.get_attribute("class") and "is-head" not in first.get_attribute("class")
    assert len(qs(browser, "svg.chains line.link")) == 1, "the incremental is linked to its parent"
    assert "head chain" in q(browser, "svg.chains .chain-label").text
    assert "MiB" in first.text or "KiB" in first.text, first.text  # each point's stored size
    shot(browser, "chain", "h2")


def test_roll_back_from_the_picture(server, browser):
    browser.get(server.url + f"/console/volumes/{State.volume}")
    click_through(browser, f"svg.chains a.point[data-snapshot='{State.first}']")
    wait(lambda: browser.current_url.endswith(f"/console/snapshots/{State.first}"), "the point's page")
    click_through(browser, "#rollback")
    question = q(browser, "#question").text
    assert State.volume in question and State.first in question and "web" in question and "one" in question
    click_through(browser, "#confirm")
    wait(lambda: browser.current_url.endswith(f"/console/volumes/{State.volume}"), "the volume's page")
    assert "Rolling back" in flash(browser)
    assert wait_flash_job(browser) == "successful"
    assert digest(State.path) == State.first_bytes, "the volume holds the first point's bytes again"
    browser.refresh()
    # The newest point stays its chain's head (model.md): a roll back moves bytes, not the chain.
    head = q(browser, "svg.chains a.point.is-head").get_attribute("data-snapshot")
    assert head == State.second


def test_delete_and_recover_a_point(server, browser):
    browser.get(server.url + f"/console/snapshots/{State.first}")
    click_through(browser, "#delete-snapshot")
    assert State.first in q(browser, "#question").text and "recoverable" in q(browser, "#question").text
    click_through(browser, "#confirm")
    wait(lambda: browser.current_url.endswith(f"/console/volumes/{State.volume}"), "the volume's page")
    assert wait_flash_job(browser) == "successful"
    browser.refresh()
    pt = q(browser, f"svg.chains a.point[data-snapshot='{State.first}']")
    assert pt.get_attribute("data-status") == "deleted"
    assert re.search(r"deleted · 1 h 5\d min left", pt.text), pt.text
    shot(browser, "chain-deleted", "h2")
    click_through(browser, f"svg.chains a.point[data-snapshot='{State.first}']")
    wait(lambda: browser.current_url.endswith(f"/console/snapshots/{State.first}"), "the point's page")
    assert "recoverable for" in q(browser, "#snapshot-status").text
    click_through(browser, "#recover")
    assert "Recovered" in flash(browser)
    assert q(browser, "#snapshot-status").text.startswith("available")
    browser.get(server.url + f"/console/volumes/{State.volume}")
    assert q(browser, f"svg.chains a.point[data-snapshot='{State.first}']").get_attribute("data-status") == "available"


def test_rename_tag_new_volume_and_capture_from_a_point(server, browser):
    browser.get(server.url + f"/console/snapshots/{State.second}")
    q(browser, "#rename-name").clear()
    q(browser, "#rename-name").send_keys("two-renamed")
    click_through(browser, "#rename")
    assert "Renamed" in flash(browser) and q(browser, "#snapshot-name").text == "two-renamed"
    q(browser, "#tag-key").send_keys("env")
    q(browser, "#tag-value").send_keys("prod")
    click_through(browser, "#tag")
    assert "env=prod" in q(browser, "#tags").text
    browser.get(server.url + "/console/snapshots?tag=env%3Dprod")
    assert [r.get_attribute("data-snapshot") for r in qs(browser, "#snapshots tbody tr[data-snapshot]")] == [State.second]
    # A new volume from the point holds the point's bytes.
    browser.get(server.url + f"/console/snapshots/{State.second}")
    q(browser, "#tovol-name").send_keys("copy")
    click_through(browser, "#to-volume")
    assert "Creating volume" in flash(browser) and wait_flash_job(browser) == "successful"
    copy = q(browser, "#volume-id").text
    assert copy != State.volume and q(browser, "#volume-name").text == "copy"
    assert digest(q(browser, "#path").text) == State.second_bytes
    click_through(browser, "#delete-volume")
    assert copy in q(browser, "#question").text
    click_through(browser, "#confirm")
    assert wait_flash_job(browser) == "successful"
    browser.refresh()
    assert copy not in q(browser, "#volumes").text
    # The volume is a system disk: its point captures as an image.
    browser.get(server.url + f"/console/snapshots/{State.second}")
    q(browser, "#capture-name").send_keys("golden")
    click_through(browser, "#capture")
    assert "Capturing image" in flash(browser) and wait_flash_job(browser) == "successful"
    browser.refresh()
    assert "golden" in q(browser, "#images").text


def test_a_jobs_progress_moves_without_reload(server, browser):
    # A point of a volume with enough bytes that its capture takes a while.
    browser.get(server.url + "/console/volumes")
    q(browser, "#new-name").send_keys("big")
    q(browser, "#new-size").clear()
    q(browser, "#new-size").send_keys("2")
    click_through(browser, "#create-volume")
    assert wait_flash_job(browser) == "successful"
    path = q(browser, "#path").text
    with open(path, "r+b") as f:
        for i in range(48):
            f.write(os.urandom(16 * MIB))
        os.fsync(f.fileno())
    q(browser, "#snap-name").send_keys("big-one")
    click_through(browser, "#take-snapshot")
    wait(lambda: qs(browser, "#flash .job"), "the job's bar")
    marker = browser.execute_script("window.__same_page = 1; return 1")
    seen = []
    deadline = time.time() + 300
    while time.time() < deadline:
        # One read of the bar, its status and its end (between separate reads the page's
        # script may update it).
        value, status, done = browser.execute_script(
            "const j = document.querySelector('#flash .job');"
            "return [j.querySelector('progress').value, j.querySelector('.status').textContent, j.dataset.done]")
        seen.append((int(value), status))
        if done == "1":
            break
        time.sleep(0.05)
    State.job = q(browser, "#flash .job").get_attribute("data-job")
    values = [v for v, _ in seen]
    print("progress seen:", sorted(set(seen)))
    assert seen[-1] == (100, "successful"), seen[-5:]
    assert any(0 < v < 100 for v in values), f"a value between 0 and 100 was shown: {seen}"
    assert len(set(values)) >= 2, "the bar moved"
    assert browser.execute_script("return window.__same_page") == marker, "no reload happened"
    browser.get(server.url + "/console/jobs")
    assert State.job in q(browser, "table.jobs").text


def test_a_failing_action_says_why_and_changes_nothing(server, browser):
    browser.get(server.url + f"/console/volumes/{State.volume}")
    size = q(browser, "#volume-size").text
    q(browser, "#resize-size").clear()
    q(browser, "#resize-size").send_keys("lots")
    click_through(browser, "#resize")
    assert "whole number of GiB" in flash(browser)
    assert q(browser, "#flash").get_attribute("class") == "flash error"
    # A data disk's point cannot become an image: the service says so, in words.
    browser.get(server.url + "/console/snapshots?q=big-one")
    click_through(browser, "#snapshots a[href^='/console/snapshots/ss-']")
    q(browser, "#capture-name").send_keys("golden-data")
    click_through(browser, "#capture")
    assert "only a snapshot of a system disk can be captured as an image" in flash(browser)
    browser.get(server.url + "/console/images")
    assert "golden-data" not in q(browser, "#images").text
    browser.get(server.url + f"/console/volumes/{State.volume}")
    assert q(browser, "#volume-size").text == size


def test_snapshot_filters_and_paging(server, browser):
    browser.get(server.url + "/console/snapshots")
    assert "of 3" in q(browser, "#range").text
    q(browser, "#f-type option[value=incremental]").click()
    click_through(browser, "#apply-filters")
    rows = qs(browser, "#snapshots tbody tr[data-snapshot]")
    assert [r.get_attribute("data-snapshot") for r in rows] == [State.second]
    browser.get(server.url + f"/console/snapshots?volume={State.volume}&limit=1")
    assert q(browser, "#range").text == "1–1 of 2"
    click_through(browser, "#next")
    assert q(browser, "#range").text == "2–2 of 2"
    browser.get(server.url + "/console/snapshots?from=yesterday")
    assert "is not a time for from" in q(browser, ".flash.error").text


def test_overview_and_phone_width(server, browser):
    browser.get(server.url + "/console/")
    assert q(browser, "#n-volumes .v").text == "2"
    assert q(browser, "#n-snapshots-available .v").text == "3"
    assert q(browser, "#ratio .v").text.endswith("×")
    shot(browser, "overview")
    browser.set_window_size(390, 844)
    try:
        for page in ("/console/", "/console/volumes", f"/console/volumes/{State.volume}", "/console/snapshots",
                     "/console/jobs", f"/console/snapshots/{State.first}"):
            browser.get(server.url + page)
            over = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert over <= 0, f"{page} is wider than a phone by {over}px"
        shot(browser, "phone-chain")
    finally:
        browser.set_window_size(1280, 1000)


def test_sign_out_then_another_account_sees_nothing_of_alices(server, browser):
    browser.get(server.url + "/console/")
    click_through(browser, "button.signout")
    assert "signed out" in flash(browser)
    browser.get(server.url + "/console/volumes")
    assert browser.current_url.endswith("/console/login"), "the session is gone"
    key, secret = dialects.ACCOUNTS["bob"]["qingcloud"]
    sign_in(browser, server, key, secret)
    wait(lambda: browser.current_url.endswith("/console/"), "bob's overview")
    assert q(browser, "#account").text == "bob"
    assert q(browser, "#n-volumes .v").text == "0"
    for page in ("/console/", "/console/volumes", "/console/snapshots", "/console/jobs", "/console/images"):
        browser.get(server.url + page)
        text = browser.page_source
        for alices in (State.volume, State.first, State.second, State.job, "big-one"):
            assert alices not in text, f"{page} shows bob alice's {alices}"
    browser.get(server.url + f"/console/volumes/{State.volume}")
    assert "There is no volume" in q(browser, ".flash.error").text
    browser.get(server.url + f"/console/snapshots/{State.first}")
    assert "There is no snapshot" in q(browser, ".flash.error").text


def test_over_https_the_session_cookie_is_secure(server, browser):
    user, password = dialects.ACCOUNTS["alice"]["openstack"][2:4]
    browser.delete_all_cookies()
    browser.get(server.tls_url + "/console/login")
    q(browser, "#user").send_keys(user)
    q(browser, "#password").send_keys(password)
    click_through(browser, "#signin")
    assert q(browser, "#account").text == "alice"
    cookie = next(c for c in browser.get_cookies() if c["name"] == "ds_session")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
