#!/usr/bin/python3
"""The web console in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by Selenium against the real `callbridge serve` started here on a free port, with a CRM
stand-in that fails until told to work.

    /usr/bin/python3 tests/console/browser_test.py BUILD/bridge/callbridge [SCREENSHOT_DIR]

Exits 77 (ctest's skip) when Chromium, its driver or Selenium is missing. With SCREENSHOT_DIR (or
CALLBRIDGE_SCREENSHOTS) every page is saved there in Japanese and in English.
"""
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SKIP = 77
TOKEN = "browser-test-token-0123456789"

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    print("SKIP: python3-selenium is not installed")
    sys.exit(SKIP)

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
if not CHROMIUM or not DRIVER:
    print("SKIP: chromium or chromium-driver is not installed")
    sys.exit(SKIP)


class Crm(http.server.BaseHTTPRequestHandler):
    up = False
    hits = 0

    def do_GET(self):
        Crm.hits += 1
        body = b'{"ok":true}' if Crm.up else b'{"error":"down"}'
        self.send_response(200 if Crm.up else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def check(condition, message):
    if not condition:
        raise AssertionError(message)


class Bridge:
    def __init__(self, binary, crm_port):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="callbridge-console-")
        self.config = os.path.join(self.dir, "callbridge.yaml")
        self.crm_port = crm_port
        op = self.hash("op-password")
        viewer = self.hash("viewer-password")
        self.good_config = f"""server:
  listen: 127.0.0.1:0
  tokens: ["{TOKEN}"]
  drain_seconds: 0
storage:
  path: {self.dir}/journal.db
console:
  users:
    - {{ name: opal, role: operator, password_hash: "{op}" }}
    - {{ name: vic, role: viewer, password_hash: "{viewer}" }}
escalation:
  contacts:
    - {{ id: c-01, name: 当番 01, phone: "090-1111-0001" }}
  callflows:
    - {{ id: flow-1, name: 障害連絡, contacts: [c-01] }}
  guidances:
    - id: guide-1
      name: 障害通知
      message: "{{{{node}}}}で障害が発生しました。"
      responses:
        1: {{ type: terminate, message: 終了します }}
  dialer:
    type: simulate
    script:
      c-01: "key 1 after 60"
  ring_timeout: 120
rules:
  - name: notify-crm
    event: inbound
    request: {{ method: GET, url: "http://127.0.0.1:{crm_port}/crm?tel={{TEL}}" }}
    retry: {{ attempts: 2, backoff_ms: 10, max_backoff_ms: 20, on: [5xx] }}
"""
        with open(self.config, "w") as f:
            f.write(self.good_config)
        self.log = open(os.path.join(self.dir, "bridge.log"), "w+")
        self.process = subprocess.Popen([binary, "serve", "-c", self.config], stderr=self.log,
                                        stdout=self.log)
        self.port = 0
        for _ in range(600):
            self.log.seek(0)
            m = re.search(r'"msg":"listening".*?"port":"(\d+)"', self.log.read())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        check(self.port, "the bridge did not start")
        self.base = f"http://127.0.0.1:{self.port}"

    def hash(self, password):
        return subprocess.run([self.binary, "hash-password", "--iterations", "1000"],
                              input=password + "\n", capture_output=True, text=True,
                              check=True).stdout.strip()

    def request(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + TOKEN)
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def event(self, **fields):
        status, _, _ = self.request("POST", "/v1/events", fields)
        check(status == 202, f"event not accepted: {status}")

    def wait_done(self, call_id):
        for _ in range(1500):
            status, _, body = self.request("GET", "/v1/calls/" + call_id)
            if status == 200:
                call = json.loads(body)
                if all(e["state"] != "pending" for e in call["events"]):
                    return call
            time.sleep(0.02)
        raise AssertionError("call " + call_id + " did not finish")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    binary = sys.argv[1]
    shots = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("CALLBRIDGE_SCREENSHOTS", "")
    crm = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Crm)
    threading.Thread(target=crm.serve_forever, daemon=True).start()
    bridge = Bridge(binary, crm.server_address[1])
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    # Pages that poll re-render their rows: an element found a moment ago may be gone.
    wait = WebDriverWait(driver, 30, ignored_exceptions=[StaleElementReferenceException])
    try:
        run(bridge, driver, wait, shots)
    except Exception:
        bridge.log.seek(0)
        print(bridge.log.read()[-4000:])
        raise
    finally:
        driver.quit()
        bridge.stop()
        crm.shutdown()
    print("console browser test: all checks passed")


def sign_in(driver, wait, base, name, password):
    driver.get(base + "/console/")
    wait.until(lambda d: d.current_url.endswith("/console/login"))
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    wait.until(lambda d: d.current_url.rstrip("#calls").endswith("/console/"))
    wait.until(lambda d: d.find_element(By.ID, "who").text.startswith(name))


def fetch_status(driver, path, csrf_header):
    """POSTs from the page's own origin (its cookie), with or without the CSRF header."""
    return driver.execute_async_script("""
        const [path, withCsrf, done] = arguments;
        fetch("/console/api/me", {credentials: "same-origin"}).then(r => r.json()).then(me => {
          const headers = {"Content-Type": "application/json"};
          if (withCsrf) headers["X-CSRF-Token"] = me.csrf;
          return fetch(path, {method: "POST", credentials: "same-origin", headers,
                              body: JSON.stringify({targets: [{event_id: "ev-1", rule: "notify-crm"}]})});
        }).then(r => done(r.status), e => done(String(e)));
    """, path, csrf_header)


def no_alert(driver):
    try:
        driver.switch_to.alert
        return False
    except NoAlertPresentException:
        return True


def screenshot(driver, shots, name):
    if not shots:
        return
    os.makedirs(shots, exist_ok=True)
    driver.save_screenshot(os.path.join(shots, name + ".png"))


def run(bridge, driver, wait, shots):
    base = bridge.base
    xss = "<img src=x onerror=alert(1)>"
    bridge.event(event="inbound", call_id="DEAD-1", tel="03-1234-5678")
    bridge.wait_done("DEAD-1")
    Crm.up = True
    bridge.event(event="inbound", call_id="XSS-1", tel=xss, vars={"NOTE": xss})
    bridge.wait_done("XSS-1")
    Crm.up = False

    # Every page carries the security headers.
    for path in ("/console/login", "/console/", "/console/app.js", "/console/api/me", "/console/x"):
        status, headers, _ = bridge.request("GET", path)
        check("default-src 'self'" in headers.get("Content-Security-Policy", ""), path + ": CSP")
        check(headers.get("X-Frame-Options") == "DENY", path + ": X-Frame-Options")
        check(headers.get("X-Content-Type-Options") == "nosniff", path + ": nosniff")

    # Wrong passwords are refused; the operator signs in.
    driver.get(base + "/console/login")
    driver.find_element(By.ID, "name").send_keys("opal")
    driver.find_element(By.ID, "password").send_keys("wrong")
    driver.find_element(By.ID, "sign-in").click()
    wait.until(lambda d: d.find_element(By.ID, "login-error").text != "")
    screenshot(driver, shots, "login-ja")
    sign_in(driver, wait, base, "opal", "op-password")

    # The list: the XSS caller ID is text, no image, no alert.
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#calls-body tr")) == 2)
    tels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#calls-body td.tel")]
    check(xss in tels, f"caller ID shown as text: {tels}")
    check(not driver.find_elements(By.TAG_NAME, "img"), "no img element")
    check(no_alert(driver), "no alert")
    screenshot(driver, shots, "calls-ja")

    # Search by the number written another way (full width, no hyphens).
    driver.find_element(By.ID, "q-phone").send_keys("０３１２３４５６７８")
    driver.find_element(By.ID, "search").click()
    wait.until(lambda d: [r.get_attribute("data-call-id") for r in
                          d.find_elements(By.CSS_SELECTOR, "#calls-body tr")] == ["DEAD-1"])
    outcome = driver.find_element(By.CSS_SELECTOR, "#calls-body td[data-outcome]")
    check(outcome.get_attribute("data-outcome") == "dead", "the call is a dead letter")

    # One call: both attempts with their states.
    driver.find_element(By.LINK_TEXT, "DEAD-1").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#call-timeline tr.attempt")) >= 2)
    states = [r.get_attribute("data-state") for r in
              driver.find_elements(By.CSS_SELECTOR, "#call-timeline tr.attempt")]
    check(states[-1] == "dead" and "retrying" in states, f"attempt states: {states}")
    screenshot(driver, shots, "call-ja")

    # The XSS call's variables stay text too.
    driver.get(base + "/console/#call/XSS-1")
    wait.until(lambda d: xss in d.find_element(By.ID, "call-vars").text)
    check(not driver.find_elements(By.TAG_NAME, "img") and no_alert(driver), "variables as text")

    # CSRF: a POST from the session without the token is refused.
    check(fetch_status(driver, "/console/api/replay", False) == 403, "POST without CSRF token")

    # Failures: replay the dead letter now that the CRM works.
    driver.get(base + "/console/#failures")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#failures-body tr.failure"))
    screenshot(driver, shots, "failures-ja")
    Crm.up = True
    driver.find_element(By.CSS_SELECTOR, "#failures-body button.replay-one").click()
    wait.until(lambda d: [li.get_attribute("data-state") for li in
                          d.find_elements(By.CSS_SELECTOR, "#replay-results li")] == ["succeeded"])
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#failures-body tr.failure"))

    # Rules: an invalid file is refused with located errors; the rules in force stay.
    driver.get(base + "/console/#rules")
    wait.until(lambda d: "notify-crm" in d.find_element(By.ID, "rules-list").text)
    # Simulate: a dry run shows the rendered request and sends nothing.
    hits = Crm.hits
    driver.find_element(By.ID, "s-tel").send_keys("0399998888")
    driver.find_element(By.ID, "simulate-dry").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#simulate-results .simulated-rule"))
    result = driver.find_element(By.ID, "simulate-results").text
    check("crm?tel=0399998888" in result, "simulated request: " + result)
    check(Crm.hits == hits, "a dry run sends nothing")
    screenshot(driver, shots, "rules-ja")
    with open(bridge.config, "w") as f:
        f.write(bridge.good_config.replace("method: GET", "method: FETCH"))
    driver.find_element(By.ID, "reload").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#validation-errors li.located-error"))
    errors = driver.find_element(By.ID, "validation-errors").text
    check("callbridge.yaml:" in errors, "located error: " + errors)
    with open(bridge.config, "w") as f:
        f.write(bridge.good_config)

    # Escalation: start a chain by hand, see it running, abort it.
    driver.get(base + "/console/#chains")
    driver.find_element(By.ID, "c-callflow").send_keys("flow-1")
    driver.find_element(By.ID, "c-guidance").send_keys("guide-1")
    driver.find_element(By.ID, "c-params").send_keys("node=web-01")
    driver.find_element(By.CSS_SELECTOR, "#chain-start button[type=submit]").click()
    wait.until(lambda d: d.find_element(By.ID, "chain-started").text != "")
    wait.until(lambda d: [r.get_attribute("data-status") for r in
                          d.find_elements(By.CSS_SELECTOR, "#chains-body tr.chain")] == ["running"])
    chain_id = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#chains-body tr.chain")
                          .get_attribute("data-chain-id"))
    screenshot(driver, shots, "chains-ja")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#chains-body button.abort-chain").click()
               or True)
    wait.until(lambda d: [r.get_attribute("data-status") for r in
                          d.find_elements(By.CSS_SELECTOR, "#chains-body tr.chain")] == ["aborted"])
    driver.get(base + "/console/#chains/" + chain_id)
    wait.until(lambda d: [r.get_attribute("data-result") for r in
                          d.find_elements(By.CSS_SELECTOR, "#chain-detail tr.chain-attempt")] == ["aborted"])

    # kintone without a directory says so.
    driver.get(base + "/console/#kintone")
    wait.until(lambda d: d.find_element(By.ID, "directory-unavailable").is_displayed())
    screenshot(driver, shots, "kintone-ja")

    driver.get(base + "/console/#overview")
    wait.until(lambda d: d.find_element(By.ID, "ov-queue").text != "")
    check("ms" in driver.find_element(By.ID, "ov-latency").text, "latency percentiles shown")
    screenshot(driver, shots, "overview-ja")

    # English covers the labels, and the choice sticks.
    driver.find_element(By.ID, "lang-toggle").click()
    wait.until(lambda d: d.find_element(By.ID, "nav-calls").text == "Calls")
    for page in ("calls", "failures", "chains", "kintone", "rules", "overview"):
        driver.get(base + "/console/#" + page)
        wait.until(lambda d: d.find_element(By.ID, "nav-calls").text == "Calls")
        time.sleep(0.3)
        screenshot(driver, shots, page + "-en")
    driver.find_element(By.ID, "lang-toggle").click()

    # A viewer sees no replay button, and the server refuses the replay anyway.
    driver.find_element(By.ID, "sign-out").click()
    wait.until(lambda d: d.current_url.endswith("/console/login"))
    bridge.event(event="inbound", call_id="DEAD-2", tel="0312345678")
    Crm.up = False
    bridge.wait_done("DEAD-2")
    sign_in(driver, wait, base, "vic", "viewer-password")
    driver.get(base + "/console/#failures")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#failures-body tr.failure"))
    check(not driver.find_elements(By.CSS_SELECTOR, "button.replay-one"), "viewer: no replay button")
    check(not driver.find_elements(By.ID, "replay-selected"), "viewer: no replay-selected")
    hits = Crm.hits
    check(fetch_status(driver, "/console/api/replay", True) == 403, "viewer replay refused")
    driver.get(base + "/console/#rules")
    wait.until(lambda d: "notify-crm" in d.find_element(By.ID, "rules-list").text)
    check(not driver.find_elements(By.ID, "simulate-send"), "viewer: no send button")
    check(not driver.find_elements(By.ID, "reload"), "viewer: no reload button")

    # Repeated wrong passwords are slowed: the sixth attempt is told to wait.
    driver.find_element(By.ID, "sign-out").click()
    wait.until(lambda d: d.current_url.endswith("/console/login"))
    for attempt in range(6):
        driver.find_element(By.ID, "password").clear()
        driver.find_element(By.ID, "name").clear()
        driver.find_element(By.ID, "name").send_keys("vic")
        driver.find_element(By.ID, "password").send_keys("guess-%d" % attempt)
        driver.find_element(By.ID, "sign-in").click()
        wait.until(lambda d: d.find_element(By.ID, "login-error").text != "")
        if attempt < 5:
            driver.execute_script("document.getElementById('login-error').textContent = ''")
    check("(" in driver.find_element(By.ID, "login-error").text, "slowed: " +
          driver.find_element(By.ID, "login-error").text)
    check(Crm.hits == hits, "nothing sent for the viewer")


if __name__ == "__main__":
    main()
