#!/usr/bin/python3
"""The web console in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by Selenium against the real `callbridge serve` started here on a free port, with a CRM
stand-in that fails until told to work, a Kompira Pigeon stand-in that keeps each chain calling
until it is aborted, and a kintone stand-in with a customer app for the directory.

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
import urllib.parse
import urllib.request
import uuid

SKIP = 77
TOKEN = "browser-test-token-0123456789"

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    print("SKIP: python3-selenium is not installed")
    sys.exit(SKIP)

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
if not CHROMIUM or not DRIVER:
    print("SKIP: chromium or chromium-driver is not installed")
    sys.exit(SKIP)


PIGEON_TOKEN = "pigeon-token-5a1e"
KINTONE_TOKEN = "kintone-token-77c2"
# What the CRM answers while down: markup a console must show as text.
CRM_DOWN = '{"error":"down","detail":"<b>busy</b>"}'


def send_json(handler, status, document):
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def read_json(handler):
    length = int(handler.headers.get("Content-Length") or 0)
    return json.loads(handler.rfile.read(length) or b"{}")


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Pigeon(http.server.BaseHTTPRequestHandler):
    """Kompira Pigeon's chain API: a chain keeps calling its first contact until aborted."""
    chains = {}
    aborts = 0

    def authorized(self):
        if self.headers.get("X-Authorization") == "Token " + PIGEON_TOKEN:
            return True
        send_json(self, 401, {"detail": "invalid token"})
        return False

    def do_POST(self):
        if not self.authorized():
            return
        params = read_json(self).get("params", {})
        if self.path == "/api/apps/pigeon/chain/invoke":
            result_id = str(uuid.uuid4())
            contact = (params.get("callflow", {}).get("contacts") or [{}])[0]
            Pigeon.chains[result_id] = {"aborted": False, "started": now_iso(), "contact": contact,
                                        "parameters": params.get("parameters", {})}
            send_json(self, 200, {"resultId": result_id})
        elif self.path == "/api/apps/pigeon/chain/abort":
            chain = Pigeon.chains.get(params.get("resultId"))
            if not chain:
                send_json(self, 404, {"detail": "no such result"})
                return
            chain["aborted"] = True
            Pigeon.aborts += 1
            send_json(self, 200, {"resultId": params.get("resultId")})
        else:
            send_json(self, 404, {"detail": "not found"})

    def do_GET(self):
        if not self.authorized():
            return
        m = re.fullmatch(r"/api/apps/pigeon/results/([^/]+)", self.path)
        chain = Pigeon.chains.get(m.group(1)) if m else None
        if not chain:
            send_json(self, 404, {"detail": "not found"})
            return
        contact = chain["contact"]
        call = {"contactId": contact.get("contactId", ""), "displayName": contact.get("displayName", ""),
                "phoneNumber": contact.get("phoneNumber", ""), "loop": 1,
                "startedAt": chain["started"], "result": "aborted" if chain["aborted"] else None}
        send_json(self, 200, {"isActive": not chain["aborted"],
                              "status": "aborted" if chain["aborted"] else "calling",
                              "history": [call]})

    def log_message(self, *args):
        pass


class Kintone(http.server.BaseHTTPRequestHandler):
    """kintone's records API for app 12, two customers, answered as kintone does (compact)."""
    requests = 0
    customers = [("1", "03-5555-0001", "山田商事"), ("2", "06-5555-0002", "<i>Osaka</i> 株式会社")]

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        if self.headers.get("X-Cybozu-API-Token") != KINTONE_TOKEN:
            send_json(self, 401, {"code": "GAIA_IA02", "id": "x", "message": "APIトークンが不正です。"})
            return
        if url.path != "/k/v1/records.json" or query.get("app") != ["12"]:
            send_json(self, 404, {"code": "GAIA_AP01", "id": "x", "message": "指定したアプリが見つかりません。"})
            return
        Kintone.requests += 1
        after = re.search(r"\$id > \"?(\d+)", query.get("query", [""])[0])
        last = int(after.group(1)) if after else 0
        records = [{"$id": {"type": "__ID__", "value": i}, "$revision": {"type": "__REVISION__", "value": "1"},
                    "電話番号": {"type": "SINGLE_LINE_TEXT", "value": tel},
                    "顧客名": {"type": "SINGLE_LINE_TEXT", "value": name},
                    "更新日時": {"type": "UPDATED_TIME", "value": "2026-11-30T00:00:00Z"}}
                   for i, tel, name in Kintone.customers if int(i) > last]
        send_json(self, 200, {"records": records, "totalCount": str(len(records))})

    def log_message(self, *args):
        pass


class Crm(http.server.BaseHTTPRequestHandler):
    up = False
    hits = 0

    def do_GET(self):
        Crm.hits += 1
        body = b'{"ok":true}' if Crm.up else CRM_DOWN.encode()
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
    def __init__(self, binary, crm_port, pigeon_port, kintone_port):
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
  session_minutes: 480
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
    type: pigeon
    url: http://127.0.0.1:{pigeon_port}
    token: {PIGEON_TOKEN}
  poll_interval: 1
kintone:
  connections:
    main:
      url: http://127.0.0.1:{kintone_port}
      api_token: {KINTONE_TOKEN}
    oa:
      url: http://127.0.0.1:{kintone_port}
      oauth: {{ client_id: console-test, client_secret: oauth-secret-0f3e, redirect_uri: "http://127.0.0.1/v1/kintone/oauth/oa/callback" }}
  directory:
    connection: main
    app: 12
    phone_fields: [電話番号]
    name_field: 顧客名
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
    pigeon = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pigeon)
    kintone = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Kintone)
    for server in (crm, pigeon, kintone):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    bridge = Bridge(binary, crm.server_address[1], pigeon.server_address[1], kintone.server_address[1])
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
        for server in (crm, pigeon, kintone):
            server.shutdown()
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
    # Each attempt's response: its status and body, the CRM's markup shown as text.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#call-timeline pre.response"))
    bodies = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#call-timeline pre.response")]
    check(bodies and all(b == CRM_DOWN for b in bodies), f"response bodies: {bodies}")
    statuses = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#call-timeline tr.attempt td.status")]
    check(statuses and all(s == "503" for s in statuses), f"response statuses: {statuses}")
    check(not driver.find_elements(By.CSS_SELECTOR, "#call-timeline b"), "response markup stays text")
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

    # Escalation: start a chain by hand from the defined call flows and guidances, with the
    # guidance's parameter; Kompira Pigeon keeps calling until the chain is aborted here.
    driver.get(base + "/console/#chains")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#c-callflow option")) == 1)
    Select(driver.find_element(By.ID, "c-callflow")).select_by_value("flow-1")
    Select(driver.find_element(By.ID, "c-guidance")).select_by_value("guide-1")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#c-named-params input[data-param=node]"))
    check("で障害が発生しました" in driver.find_element(By.ID, "c-definition").text, "guidance shown")
    driver.find_element(By.CSS_SELECTOR, "#c-named-params input[data-param=node]").send_keys("web-01")
    driver.find_element(By.CSS_SELECTOR, "#chain-start button[type=submit]").click()
    wait.until(lambda d: d.find_element(By.ID, "chain-started").text != "")
    wait.until(lambda d: [r.get_attribute("data-status") for r in
                          d.find_elements(By.CSS_SELECTOR, "#chains-body tr.chain")] == ["running"])
    chain_id = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#chains-body tr.chain")
                          .get_attribute("data-chain-id"))
    invoked = list(Pigeon.chains.values())
    check(len(invoked) == 1 and invoked[0]["parameters"] == {"node": "web-01"},
          f"Pigeon was asked for one chain with its parameter: {invoked}")
    # Pigeon is calling (its first poll shows the attempt) until the abort.
    driver.get(base + "/console/#chains/" + chain_id)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chain-detail tr.chain-attempt")) == 1)
    screenshot(driver, shots, "chains-ja")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#chains-body button.abort-chain").click()
               or True)
    wait.until(lambda d: [r.get_attribute("data-status") for r in
                          d.find_elements(By.CSS_SELECTOR, "#chains-body tr.chain")] == ["aborted"])
    check(Pigeon.aborts == 1, "Pigeon was told to abort")
    wait.until(lambda d: [r.get_attribute("data-result") for r in
                          d.find_elements(By.CSS_SELECTOR, "#chain-detail tr.chain-attempt")] == ["aborted"])
    status, _, body = bridge.request("GET", "/v1/escalation/chains/" + chain_id)
    check(status == 200 and json.loads(body)["result"]["status"] == "aborted", "chain aborted: " + str(body))

    # kintone: each connection with its auth, OAuth state and authorize link, requests today per
    # app against the daily limit; the directory, and a sync on request.
    driver.get(base + "/console/#kintone")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#connections-body tr.kintone-connection")) == 2)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-connection=main] div.app-usage[data-app='12']"))
    usage = driver.find_element(By.CSS_SELECTOR, "tr[data-connection=main] div.app-usage").text
    check(re.search(r"12: \d+ / 10,000", usage), "requests today against the limit: " + usage)
    link = driver.find_element(By.CSS_SELECTOR, "tr[data-connection=oa] a.authorize-link")
    check(link.get_attribute("href").endswith("/console/api/route/v1/kintone/oauth/oa/start"),
          "authorize link: " + link.get_attribute("href"))
    check("未認可" in driver.find_element(By.CSS_SELECTOR, "tr[data-connection=oa] td.oauth-state").text,
          "OAuth not yet authorized")
    wait.until(lambda d: "2" in d.find_element(By.ID, "directory-status").text)
    directory = driver.find_element(By.ID, "directory-status").text
    check("顧客数 2" in directory, "directory: " + directory)
    screenshot(driver, shots, "kintone-ja")
    before = Kintone.requests
    driver.find_element(By.ID, "directory-sync").click()
    wait.until(lambda d: d.find_element(By.ID, "directory-sync-result").text != "")
    for _ in range(200):
        if Kintone.requests > before:
            break
        time.sleep(0.05)
    check(Kintone.requests > before, "sync now reached kintone")

    driver.get(base + "/console/#overview")
    wait.until(lambda d: d.find_element(By.ID, "ov-queue").text != "")
    check("ms" in driver.find_element(By.ID, "ov-latency").text, "latency percentiles shown")
    screenshot(driver, shots, "overview-ja")

    # English covers the labels, and the choice sticks.
    driver.find_element(By.ID, "lang-toggle").click()
    wait.until(lambda d: d.find_element(By.ID, "nav-calls").text == "Calls")
    for page in ("calls", "call/DEAD-1", "failures", "chains/" + chain_id, "kintone", "rules", "overview"):
        driver.get(base + "/console/#" + page)
        wait.until(lambda d: d.find_element(By.ID, "nav-calls").text == "Calls")
        time.sleep(0.3)
        screenshot(driver, shots, page.split("/")[0] + "-en")
    driver.get(base + "/console/#call/DEAD-1")
    wait.until(lambda d: "Response body" in d.find_element(By.ID, "call-timeline").text)
    driver.get(base + "/console/#kintone")
    wait.until(lambda d: "Requests today" in d.find_element(By.TAG_NAME, "body").text)
    check("not authorized" in driver.find_element(By.CSS_SELECTOR, "tr[data-connection=oa] td.oauth-state").text,
          "OAuth state in English")

    # A viewer sees no replay button, and the server refuses the replay anyway.
    driver.find_element(By.ID, "sign-out").click()
    wait.until(lambda d: d.current_url.endswith("/console/login"))
    screenshot(driver, shots, "login-en")
    driver.find_element(By.ID, "lang-toggle").click()
    wait.until(lambda d: d.find_element(By.ID, "sign-in").text == "サインイン")
    Crm.up = False  # before the event: its request may reach the CRM before event() returns
    bridge.event(event="inbound", call_id="DEAD-2", tel="0312345678")
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
    driver.get(base + "/console/#chains")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chains-body tr.chain"))
    check(not driver.find_elements(By.ID, "chain-start"), "viewer: no start form")
    driver.get(base + "/console/#kintone")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#connections-body tr.kintone-connection"))
    check(not driver.find_elements(By.ID, "directory-sync"), "viewer: no sync button")
    check(not driver.find_elements(By.CSS_SELECTOR, "a.authorize-link"), "viewer: no authorize link")

    # A session expires: sessions made after a reload with session_minutes 0.05 last 3 seconds.
    driver.find_element(By.ID, "sign-out").click()
    wait.until(lambda d: d.current_url.endswith("/console/login"))
    with open(bridge.config, "w") as f:
        f.write(bridge.good_config.replace("session_minutes: 480", "session_minutes: 0.05"))
    status, _, body = bridge.request("POST", "/console/api/rules/reload")
    check(status == 200, "reload with a short session: " + str(body))
    signed_in = time.monotonic()
    sign_in(driver, wait, base, "vic", "viewer-password")
    while time.monotonic() - signed_in < 10:
        driver.get(base + "/console/")
        if driver.current_url.endswith("/console/login"):
            break
        time.sleep(0.25)
    lasted = time.monotonic() - signed_in
    check(driver.current_url.endswith("/console/login"), "the session expired")
    check(2.9 <= lasted < 6, f"the session lasted {lasted:.1f} s")

    # Repeated wrong passwords are slowed: after five failures the next attempt is told to wait
    # 1 s; one after that wait is let through (and fails), and the next must wait 2 s.
    def attempt(n):
        driver.find_element(By.ID, "password").clear()
        driver.find_element(By.ID, "name").clear()
        driver.find_element(By.ID, "name").send_keys("vic")
        driver.execute_script("document.getElementById('login-error').textContent = ''")
        driver.find_element(By.ID, "password").send_keys("guess-%d" % n)
        driver.find_element(By.ID, "sign-in").click()
        wait.until(lambda d: d.find_element(By.ID, "login-error").text != "")
        return driver.find_element(By.ID, "login-error").text

    driver.get(base + "/console/login")
    wait.until(lambda d: d.find_element(By.ID, "sign-in").text == "サインイン")
    failures = 0
    last_failed = time.monotonic()
    for n in range(6):
        text = attempt(n)
        if "(" in text:
            break
        failures += 1
        last_failed = time.monotonic()
    check(failures == 5, f"slowed after five failures, not {failures}")
    check(text.endswith("(1 s)"), "the sixth attempt must wait 1 s: " + text)
    n = 6
    while time.monotonic() - last_failed < 10:
        text = attempt(n)
        n += 1
        if "(" not in text:
            break
        time.sleep(0.1)
    waited = time.monotonic() - last_failed
    check("(" not in text, "let through after the wait: " + text)
    check(0.9 <= waited < 4, f"slowed for {waited:.1f} s")
    check(attempt(n).endswith("(2 s)"), "the next wait doubles")
    check(Crm.hits == hits, "nothing sent for the viewer")


if __name__ == "__main__":
    main()
