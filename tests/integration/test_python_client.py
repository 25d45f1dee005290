#!/usr/bin/env python3
"""Vessel integration test: Python's stdlib XenAPI wire clients against vesseld.

    python3 tests/integration/test_python_client.py BUILD_DIR/vesseld

Starts its own vesseld (temporary data dir, free 127.0.0.1 port, no TLS),
talks to it with xmlrpc.client (what the classic XenAPI.py module wraps) and
with JSON-RPC over urllib, prints TAP on stdout and stops vesseld on exit.
Only 127.0.0.1 is contacted; every wait is bounded.
"""
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import xmlrpc.client

CLASSES = [
    "session", "subject", "role", "task", "event", "pool", "host", "host_metrics", "host_cpu",
    "VM", "VM_metrics", "VM_guest_metrics", "console", "VBD", "VBD_metrics", "VDI", "SR", "SM",
    "PBD", "network", "VIF", "VIF_metrics", "PIF", "PIF_metrics", "message", "blob", "secret",
    "Bond", "VLAN", "pool_update",
]
NO_GET_ALL = {"session", "event"}
REF_RE = re.compile(r"^OpaqueRef:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DATETIME_RE = re.compile(r"^\d{8}T\d{2}:\d{2}:\d{2}Z$")
BAD_REF = "OpaqueRef:00000000-0000-0000-0000-000000000bad"

# --------------------------------------------------------------------------- TAP


class Todo(Exception):
    pass


TESTS = []


def test(name, todo=None):
    """Registers a test; todo="reason" marks one that cannot pass yet (TAP # TODO)."""

    def deco(fn):
        TESTS.append((name, fn, todo))
        return fn

    return deco


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line, flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


# --------------------------------------------------------------------------- server


class Vesseld:
    def __init__(self, binary):
        self.tmp = tempfile.mkdtemp(prefix="vessel-py.")
        self.password = "py-" + os.urandom(8).hex()
        pwfile = os.path.join(self.tmp, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        os.chmod(pwfile, 0o600)
        self.data = os.path.join(self.tmp, "data")
        os.mkdir(self.data)
        self.log_path = os.path.join(self.tmp, "vesseld.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "--data-dir", self.data, "--listen", "127.0.0.1:0", "--tls-listen", "none", "--nbd-listen", "none",
             "--unix", os.path.join(self.tmp, "xapi.sock"), "--root-password-file", pwfile],
            stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(self.log_path) as f:
                m = re.search(r"vesseld\.ready.* http_port=(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("vesseld did not become ready:\n" + self.log_text())
        self.url = f"http://127.0.0.1:{self.port}"

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


V = None  # the Vesseld


# --------------------------------------------------------------------------- clients


def proxy(path="/"):
    return xmlrpc.client.ServerProxy(V.url + path, allow_none=False)


def ok(result, what="call"):
    """Unwraps an XML-RPC {Status, Value} struct."""
    check(isinstance(result, dict) and "Status" in result, f"{what}: not a Status struct: {result!r}")
    if result["Status"] != "Success":
        raise AssertionError(f"{what}: failed with {result.get('ErrorDescription')!r}")
    return result["Value"]


def fails(result, code, what="call"):
    """Checks an XML-RPC Failure; returns ErrorDescription."""
    check(isinstance(result, dict) and result.get("Status") == "Failure",
          f"{what}: expected failure {code}, got {result!r}")
    ed = result["ErrorDescription"]
    eq(ed[0], code, f"{what}: error code")
    return ed


def http_post(path, body, ctype, conn=None, extra_headers=None):
    """Raw POST; returns (status, content_type, body bytes)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", V.port, timeout=15)
    try:
        headers = {"Content-Type": ctype}
        headers.update(extra_headers or {})
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        return r.status, r.getheader("Content-Type"), data
    finally:
        if own:
            conn.close()


def jsonrpc(method, params, version=2, path="/jsonrpc"):
    """Returns the decoded JSON-RPC envelope (result or error), checking HTTP."""
    env = {"id": 7, "method": method, "params": params}
    if version == 2:
        env["jsonrpc"] = "2.0"
    req = urllib.request.Request(V.url + path, data=json.dumps(env).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=15) as r:
        eq(r.status, 200, f"{method}: HTTP status")
        eq(r.headers.get("Content-Type"), "application/json", f"{method}: Content-Type")
        return json.loads(r.read())


def jcall(method, *params):
    env = jsonrpc(method, list(params))
    if env.get("error"):
        raise AssertionError(f"{method}: {env['error']!r}")
    return env["result"]


def login(p=None, nargs=4):
    p = p or proxy()
    args = ["root", V.password, "2.21", "vessel-python-test"][:nargs]
    return ok(p.session.login_with_password(*args), "login")


def wait_task(p, session, task, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = ok(p.task.get_status(session, task), "task.get_status")
        if status not in ("pending", "cancelling"):
            return status
        time.sleep(0.02)
    raise AssertionError(f"task {task} still pending after {seconds}s")


def parse_value_fragment(fragment):
    """Parses an XML-RPC <value>...</value> fragment like xapi clients do."""
    doc = ("<?xml version='1.0'?><methodResponse><params><param>" + fragment +
           "</param></params></methodResponse>")
    (value,), _ = xmlrpc.client.loads(doc)
    return value


class S:  # shared state between tests
    p = None
    session = None
    template = None
    clones = []


def template_ref():
    if S.template is None:
        vms = ok(S.p.VM.get_all_records(S.session))
        tpls = [r for r, v in vms.items() if v["is_a_template"] and not v["is_control_domain"]]
        check(tpls, "a built-in template exists")
        S.template = sorted(tpls)[0]
    return S.template


def clone(name):
    ref = ok(S.p.VM.clone(S.session, template_ref(), name), "VM.clone")
    S.clones.append(ref)
    return ref


# --------------------------------------------------------------------------- tests


@test("xmlrpc.client: login with 4 args and with 2 args over one keep-alive connection")
def t_login():
    S.p = proxy()
    S.session = login(S.p, 4)
    check(REF_RE.match(S.session), f"session ref {S.session!r}")
    s2 = login(S.p, 2)
    check(REF_RE.match(s2) and s2 != S.session, "2-arg login gives another session")
    ok(S.p.session.logout(s2))
    fails(S.p.session.login_with_password("root", "wrong-password"), "SESSION_AUTHENTICATION_FAILED",
          "wrong password")
    fails(S.p.session.login_with_password("nobody", "x"), "SESSION_AUTHENTICATION_FAILED", "wrong user")


@test("XML-RPC on /, /xmlrpc and /RPC2: text/xml, compact (no whitespace between tags)")
def t_paths():
    body = xmlrpc.client.dumps((S.session,), "pool.get_all").encode()
    for path in ("/", "/xmlrpc", "/RPC2"):
        status, ctype, data = http_post(path, body, "text/xml")
        eq(status, 200, f"{path} status")
        eq(ctype, "text/xml", f"{path} Content-Type")
        text = data.decode()
        check(not re.search(r">\s+<", text), f"{path}: whitespace between tags: {text[:200]!r}")
        (res,), _ = xmlrpc.client.loads(data)
        eq(len(ok(res)), 1, f"{path}: one pool")


@test("system.listMethods: every class has get_all_records (except session, event)")
def t_list_methods():
    methods = S.p.system.listMethods()
    check(isinstance(methods, list), "bare array")
    classes = {m[: m.index(".")] for m in methods if m.endswith(".get_all_records")}
    for cls in CLASSES:
        if cls in NO_GET_ALL:
            continue
        check(cls in classes, f"{cls}.get_all_records listed")
    for m in ("VM.clone", "event.from", "event.inject", "task.cancel",
              "session.login_with_password", "VM.add_to_other_config", "VM.add_tags"):
        check(m in methods, f"{m} listed")
    # Async.<class>.<message> names, if listed, must not end in .get_all_records:
    # the npm connector would derive a class "Async" from them.
    check(not [m for m in methods if m.startswith("Async.") and m.endswith(".get_all_records")],
          "no Async.*.get_all_records listed")
    if not any(m.startswith("Async.") for m in methods):
        diag("note: no Async.* names in system.listMethods (Async calls work regardless)")


@test("pool.get_all_records: one pool, master is this host")
def t_pool():
    pools = ok(S.p.pool.get_all_records(S.session))
    eq(len(pools), 1, "pool count")
    (ref, pool), = pools.items()
    check(REF_RE.match(ref), "pool ref")
    check(REF_RE.match(pool["master"]), "pool.master ref")
    check(isinstance(pool["other_config"], dict), "other_config is a struct")
    eq(ok(S.p.session.get_this_host(S.session, S.session)), pool["master"], "session.get_this_host")
    host = ok(S.p.host.get_record(S.session, pool["master"]))
    check(host["address"], "host.address set")
    check(host["API_version_major"] not in ("", None), "API_version_major set")


@test("get_all_records of every class answers (empty classes give {})")
def t_all_classes():
    for cls in CLASSES:
        if cls in NO_GET_ALL:
            continue
        recs = ok(getattr(S.p, cls).get_all_records(S.session), f"{cls}.get_all_records")
        check(isinstance(recs, dict), f"{cls}: struct")
        for ref in recs:
            check(REF_RE.match(ref), f"{cls}: ref {ref!r}")
    for cls in ("pool", "host", "host_cpu", "host_metrics", "VM", "SM", "network", "PIF"):
        check(ok(getattr(S.p, cls).get_all(S.session)), f"{cls} has objects after first start")


@test("XML-RPC: 64-bit ints travel as strings, both ways")
def t_ints():
    vm = ok(S.p.VM.get_record(S.session, template_ref()))
    for f in ("memory_static_max", "memory_dynamic_min", "VCPUs_max", "user_version"):
        check(isinstance(vm[f], str) and re.match(r"^-?\d+$", vm[f]), f"VM.{f} is a digit string: {vm[f]!r}")
    host = ok(S.p.pool.get_all_records(S.session))
    hm = ok(S.p.host_metrics.get_all_records(S.session))
    for rec in hm.values():
        check(isinstance(rec["memory_total"], str), f"host_metrics.memory_total {rec['memory_total']!r}")
    ref = clone("py-ints")
    ok(S.p.VM.set_user_version(S.session, ref, "42"), "set_user_version with a string int")
    eq(ok(S.p.VM.get_user_version(S.session, ref)), "42", "user_version")
    # raw XML: no <int>/<i4>/<i8> for int64 fields
    status, _, data = http_post("/", xmlrpc.client.dumps((S.session, ref), "VM.get_record").encode(), "text/xml")
    check(not re.search(rb"<(int|i4|i8)>", data), "no <int> in VM.get_record")
    del host


@test("XML-RPC: datetimes are dateTime.iso8601 like 20261122T15:04:05Z")
def t_datetimes():
    task = ok(S.p.task.create(S.session, "py-dt", "datetime test"))
    rec = ok(S.p.task.get_record(S.session, task))
    for f in ("created", "finished"):
        v = rec[f]
        check(isinstance(v, xmlrpc.client.DateTime), f"task.{f} is a dateTime: {v!r}")
        check(DATETIME_RE.match(v.value), f"task.{f} format {v.value!r}")
    created = datetime.datetime.strptime(rec["created"].value, "%Y%m%dT%H:%M:%SZ")
    now = datetime.datetime.utcnow()
    check(abs((now - created).total_seconds()) < 120, f"task.created {created} is now (UTC) {now}")
    ok(S.p.task.destroy(S.session, task))
    s = ok(S.p.session.get_record(S.session, S.session))
    check(isinstance(s["last_active"], xmlrpc.client.DateTime), "session.last_active is a dateTime")
    # JSON-RPC: the same datetime as a string
    j = jcall("session.get_record", S.session, S.session)
    check(isinstance(j["last_active"], str) and DATETIME_RE.match(j["last_active"]),
          f"JSON last_active {j['last_active']!r}")


@test("Async.VM.clone: task succeeds, task.result is an XML-RPC <value> fragment with the ref")
def t_async():
    task = ok(S.p.Async.VM.clone(S.session, template_ref(), "py-async"), "Async.VM.clone")
    check(REF_RE.match(task), f"task ref {task!r}")
    eq(wait_task(S.p, S.session, task), "success", "task status")
    rec = ok(S.p.task.get_record(S.session, task))
    result = rec["result"]
    check(isinstance(result, str) and result.startswith("<value>") and result.endswith("</value>"),
          f"task.result fragment {result!r}")
    vm = parse_value_fragment(result)
    check(REF_RE.match(vm), f"parsed ref {vm!r}")
    S.clones.append(vm)
    eq(ok(S.p.VM.get_name_label(S.session, vm)), "py-async", "clone name")
    eq(float(rec["progress"]), 1.0, "progress")
    eq(rec["error_info"], [], "error_info")
    check(REF_RE.match(rec["resident_on"]), "resident_on is a host")
    ok(S.p.task.destroy(S.session, task), "task.destroy")
    eq(fails(S.p.task.get_record(S.session, task), "HANDLE_INVALID"), ["HANDLE_INVALID", "task", task],
       "destroyed task")


@test("Async failure: task status failure, error_info is the ErrorDescription")
def t_async_fail():
    task = ok(S.p.Async.VM.clone(S.session, BAD_REF, "x"), "Async.VM.clone of a bad ref")
    eq(wait_task(S.p, S.session, task), "failure", "task status")
    eq(ok(S.p.task.get_error_info(S.session, task)), ["HANDLE_INVALID", "VM", BAD_REF], "error_info")
    ok(S.p.task.destroy(S.session, task))


@test("event.from: timeout as <double>, another session's change wakes it")
def t_event_from():
    body = xmlrpc.client.dumps((S.session, ["vm"], "", 0.0), "event.from")
    check("<double>" in body, "xmlrpc.client sends the timeout as <double>")
    r = ok(S.p.event.__getattr__("from")(S.session, ["vm"], "", 0.0), "event.from with empty token")
    check(set(r) >= {"events", "token", "valid_ref_counts"}, f"keys {sorted(r)}")
    token = r["token"]
    check(isinstance(token, str) and token, "token string")
    ref = clone("py-evt")
    # catch up past the clone
    r = ok(S.p.event.__getattr__("from")(S.session, ["vm"], token, 0.0))
    token = r["token"]

    # another session renames it while we block in event.from
    other = jcall("session.login_with_password", "root", V.password)

    def later():
        time.sleep(0.3)
        jcall("VM.set_name_label", other, ref, "py-evt-renamed")

    th = threading.Thread(target=later)
    t0 = time.monotonic()
    th.start()
    p2 = proxy()  # own connection: the long poll must not share S.p's socket
    r = ok(p2.event.__getattr__("from")(S.session, ["vm"], token, 10.0), "event.from blocking")
    took = time.monotonic() - t0
    th.join()
    check(took < 5, f"woke after {took:.2f}s, not at the 10s timeout")
    evs = [e for e in r["events"] if e["ref"] == ref]
    check(evs, f"an event for {ref}: {r['events']!r}")
    ev = evs[-1]
    check(set(ev) >= {"id", "timestamp", "class", "operation", "ref", "snapshot"}, f"event fields {sorted(ev)}")
    eq(ev["class"].lower(), "vm", "class")
    eq(ev["operation"], "mod", "operation")
    eq(ev["snapshot"]["name_label"], "py-evt-renamed", "snapshot")
    check(r["token"] != token, "token advanced")
    jcall("session.logout", other)

    # destroy -> del
    ok(S.p.VM.destroy(S.session, ref))
    S.clones.remove(ref)
    r = ok(p2.event.__getattr__("from")(S.session, ["vm"], r["token"], 5.0))
    dels = [e for e in r["events"] if e["ref"] == ref and e["operation"] == "del"]
    check(dels, "del event after destroy")


@test("event.from: valid_ref_counts names every class with its object count")
def t_valid_ref_counts():
    r = ok(S.p.event.__getattr__("from")(S.session, ["vm"], "", 0.0))
    counts = r["valid_ref_counts"]
    lower = {k.lower(): v for k, v in counts.items()}
    missing = [c for c in CLASSES if c.lower() not in lower and c not in NO_GET_ALL]
    eq(missing, [], "classes missing from valid_ref_counts")
    nvm = len(ok(S.p.VM.get_all(S.session)))
    eq(int(lower["vm"]), nvm, "valid_ref_counts VM")
    eq(int(lower["pool"]), 1, "valid_ref_counts pool")
    check(int(lower["vlan"]) == 0, "a class without objects counts 0")


@test("event.inject returns a token accepted by event.from, which reports the injected object")
def t_inject():
    pool = ok(S.p.pool.get_all(S.session))[0]
    token = ok(S.p.event.inject(S.session, "pool", pool), "event.inject")
    check(isinstance(token, str) and token, "token")
    r = ok(S.p.event.__getattr__("from")(S.session, ["pool"], token, 0.0))
    check(isinstance(r["events"], list), "events list")
    fails(S.p.event.inject(S.session, "pool", BAD_REF), "HANDLE_INVALID", "inject of a bad ref")


@test("event.from: EVENT_FROM_TOKEN_PARSE_FAILURE for garbage, EVENTS_LOST for an unknown generation")
def t_bad_tokens():
    for bad in ("garbage", "12", "1,x", ",1"):
        ed = fails(S.p.event.__getattr__("from")(S.session, ["vm"], bad, 0.0),
                   "EVENT_FROM_TOKEN_PARSE_FAILURE", f"token {bad!r}")
        eq(ed, ["EVENT_FROM_TOKEN_PARSE_FAILURE", bad], "parameters")
    fails(S.p.event.__getattr__("from")(S.session, ["vm"], "99999999999,0", 0.0), "EVENTS_LOST",
          "a token from the future (e.g. before a restart)")


@test("legacy event.register / event.next / event.unregister")
def t_legacy():
    s = login(proxy())
    p = proxy()
    ok(p.event.register(s, ["vm"]))
    ref = clone("py-legacy")
    evs = ok(p.event.next(s), "event.next")
    check(any(e["ref"] == ref for e in evs), f"event.next sees the clone: {evs!r}")
    ok(p.event.unregister(s, ["vm"]))
    ok(p.session.logout(s))


@test("errors: HANDLE_INVALID, UUID_INVALID, MESSAGE_METHOD_UNKNOWN, MESSAGE_PARAMETER_COUNT_MISMATCH, MAP_DUPLICATE_KEY")
def t_errors():
    eq(fails(S.p.VM.get_record(S.session, BAD_REF), "HANDLE_INVALID"), ["HANDLE_INVALID", "VM", BAD_REF], "params")
    eq(fails(S.p.VM.get_by_uuid(S.session, "00000000-0000-0000-0000-000000000000"), "UUID_INVALID")[0:2],
       ["UUID_INVALID", "VM"], "UUID_INVALID params")
    eq(fails(S.p.VM.no_such(S.session), "MESSAGE_METHOD_UNKNOWN"), ["MESSAGE_METHOD_UNKNOWN", "VM.no_such"], "params")
    ed = fails(S.p.VM.get_name_label(S.session), "MESSAGE_PARAMETER_COUNT_MISMATCH")
    eq(len(ed), 4, "code + method, expected, received")
    eq(ed[1], "VM.get_name_label", "method")
    check(int(ed[2]) == int(ed[3]) + 1, f"one argument short: {ed!r}")
    fails(S.p.VM.get_name_label(S.session, template_ref(), "extra"), "MESSAGE_PARAMETER_COUNT_MISMATCH", "one too many")
    ref = clone("py-errors")
    ok(S.p.VM.add_to_other_config(S.session, ref, "k", "v"))
    eq(fails(S.p.VM.add_to_other_config(S.session, ref, "k", "w"), "MAP_DUPLICATE_KEY")[0], "MAP_DUPLICATE_KEY", "dup")
    fails(S.p.VM.set_name_label(S.session, ref, ["not", "a", "string"]), "FIELD_TYPE_ERROR", "wrong type")


@test("MESSAGE_PARAMETER_COUNT_MISMATCH counts without the session, as xapi: VM.get_name_label(s) -> [.., '1', '0']")
def t_count_mismatch_xapi():
    # xapi's generated server (ocaml/idl/ocaml_backend/gen_server.ml) reports
    # the params without defaults as expected and len(params) - 1 (the
    # session) as received; xapi's doc/content/xen-api/wire-protocol.md says the same.
    eq(fails(S.p.VM.get_name_label(S.session), "MESSAGE_PARAMETER_COUNT_MISMATCH"),
       ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_name_label", "1", "0"], "ErrorDescription")
    eq(fails(S.p.session.login_with_password("root"), "MESSAGE_PARAMETER_COUNT_MISMATCH"),
       ["MESSAGE_PARAMETER_COUNT_MISMATCH", "session.login_with_password", "2", "1"],
       "a session-less message counts every parameter")


@test("SESSION_INVALID [ref] after logout, also for a never-issued session")
def t_session_invalid():
    s = login(proxy())
    ok(S.p.session.logout(s))
    eq(fails(S.p.VM.get_all(s), "SESSION_INVALID"), ["SESSION_INVALID", s], "after logout")
    fails(S.p.VM.get_all(BAD_REF), "SESSION_INVALID", "unknown session")
    env = jsonrpc("VM.get_all", [s])
    eq(env["error"]["message"], "SESSION_INVALID", "JSON-RPC code")
    eq(env["error"]["data"], [s], "JSON-RPC data")


@test("JSON-RPC 2.0 envelope: result/error with code, message = XenAPI code, data = params; ints as numbers")
def t_jsonrpc_v2():
    env = jsonrpc("session.login_with_password", ["root", V.password])
    eq(env.get("jsonrpc"), "2.0", "jsonrpc member")
    eq(env.get("id"), 7, "id echoed")
    check("error" not in env or env["error"] is None, "no error")
    s = env["result"]
    check(REF_RE.match(s), "session")
    vm = jcall("VM.get_record", s, template_ref())
    check(isinstance(vm["memory_static_max"], int), f"int64 as a JSON number: {vm['memory_static_max']!r}")
    check(isinstance(vm["other_config"], dict) and isinstance(vm["tags"], list), "maps/sets")
    env = jsonrpc("VM.get_record", [s, BAD_REF])
    err = env["error"]
    check(isinstance(err.get("code"), int), f"error.code {err!r}")
    eq(err["message"], "HANDLE_INVALID", "error.message")
    eq(err["data"], ["VM", BAD_REF], "error.data")
    check("result" not in env or env["result"] is None, "no result with an error")
    r = jsonrpc("event.from", [s, ["vm"], "", 0.1])["result"]
    check(isinstance(r["valid_ref_counts"].get("vm", r["valid_ref_counts"].get("VM")), int), "counts are numbers")
    jcall("session.logout", s)


@test("JSON-RPC 1.0 envelope: {result, error: null, id} / {result: null, error: [CODE, params...], id}")
def t_jsonrpc_v1():
    env = jsonrpc("session.login_with_password", ["root", V.password], version=1)
    check("jsonrpc" not in env, f"no jsonrpc member in a 1.0 reply: {env!r}")
    check("error" in env and env["error"] is None, "error: null")
    eq(env["id"], 7, "id")
    s = env["result"]
    env = jsonrpc("VM.get_record", [s, BAD_REF], version=1)
    check("result" in env and env["result"] is None, "result: null")
    # xapi (and XenCenter's JsonRpcClient) use the ErrorDescription array in 1.0
    eq(env["error"], ["HANDLE_INVALID", "VM", BAD_REF], "error is the ErrorDescription")
    jsonrpc("session.logout", [s], version=1)


@test("JSON-RPC answers with exactly application/json whatever the request's Content-Type details")
def t_json_ctype():
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system.listMethods", "params": []}).encode()
    for ct in ("application/json", "application/json; charset=utf-8", "text/plain"):
        status, ctype, _ = http_post("/jsonrpc", body, ct)
        eq(status, 200, f"status for {ct}")
        eq(ctype, "application/json", f"Content-Type for request {ct}")


@test("malformed bodies give HTTP 500 and the server keeps answering")
def t_malformed():
    cases = [
        ("/", b"<methodCall><nope", "text/xml"),
        ("/", b"garbage", "text/xml"),
        ("/", b"", "text/xml"),
        ("/", b"<methodCall><methodName>VM.get_all</methodName><params><param><value><int>x</int>"
              b"</value></param></params></methodCall>", "text/xml"),
        ("/", b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY b 'bbbbbbbb'>]><methodCall><methodName>&b;"
              b"</methodName></methodCall>", "text/xml"),
        ("/", "<methodCall><methodName>\u00e9\xff</methodName>".encode("latin-1"), "text/xml"),
        ("/jsonrpc", b"{\"id\":1,", "application/json"),
        ("/jsonrpc", b"[1,2]", "application/json"),
        ("/jsonrpc", b"\xff\xfe\x00", "application/json"),
        ("/jsonrpc", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", "application/json"),
    ]
    for path, body, ct in cases:
        status, _, _ = http_post(path, body, ct)
        eq(status, 500, f"{path} {body[:40]!r}")
        check(V.alive(), "vesseld still running")
    check(S.p.system.listMethods(), "answers afterwards")


@test("deeply nested bodies (XML and JSON) are refused cleanly")
def t_deep():
    n = 20000
    xml = (b"<methodCall><methodName>VM.get_all</methodName><params><param>" + b"<value><array><data>" * n +
           b"</data></array></value>" * n + b"</param></params></methodCall>")
    status, _, _ = http_post("/", xml, "text/xml")
    check(status >= 400, f"XML nested {n}: status {status}")
    js = (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"VM.get_all\",\"params\":[" + b"[" * n + b"]" * n + b"]}")
    status, _, _ = http_post("/jsonrpc", js, "application/json")
    check(status >= 400, f"JSON nested {n}: status {status}")
    check(V.alive(), "vesseld still running")
    check(S.p.system.listMethods(), "answers afterwards")


@test("huge bodies are refused (413 before the body is read) and the server keeps answering")
def t_huge():
    size = 64 << 20
    s = socket.create_connection(("127.0.0.1", V.port), timeout=10)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
                  b"Content-Length: %d\r\n\r\n" % size)
        s.sendall(b"<methodCall>" + b"x" * 65536)
        head = s.recv(4096)
    finally:
        s.close()
    check(head.startswith(b"HTTP/1.1 413"), f"answer {head[:60]!r}")
    # a chunked body that grows past the limit: the connection is cut
    s = socket.create_connection(("127.0.0.1", V.port), timeout=10)
    got = b""
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(16 * 8):  # 8 MiB
            s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        got = s.recv(4096)
    except OSError:
        pass
    finally:
        s.close()
    check(not got.startswith(b"HTTP/1.1 200"), f"chunked 8 MiB body not served: {got[:60]!r}")
    check(V.alive(), "vesseld still running")
    check(S.p.system.listMethods(), "answers afterwards")


@test("a burst of calls on one keep-alive connection stays on that connection")
def t_keepalive():
    conn = http.client.HTTPConnection("127.0.0.1", V.port, timeout=10)
    body = xmlrpc.client.dumps((S.session, template_ref()), "VM.get_name_label").encode()
    conn.connect()
    sock = conn.sock
    for _ in range(200):
        status, _, data = http_post("/", body, "text/xml", conn=conn)
        eq(status, 200, "status")
    check(conn.sock is sock, "same socket reused")
    conn.close()


@test("session.logout then any call gives SESSION_INVALID; cleanup")
def t_cleanup():
    for ref in list(S.clones):
        ok(S.p.VM.destroy(S.session, ref), f"VM.destroy {ref}")
        S.clones.remove(ref)
    ok(S.p.session.logout(S.session))
    fails(S.p.pool.get_all(S.session), "SESSION_INVALID", "after logout")


# --------------------------------------------------------------------------- main


def main():
    global V
    if len(sys.argv) != 2:
        print("usage: test_python_client.py PATH/TO/vesseld", file=sys.stderr)
        return 2
    print("TAP version 13", flush=True)
    try:
        V = Vesseld(sys.argv[1])
    except Exception as e:  # noqa: BLE001
        print(f"Bail out! {e}", flush=True)
        return 1
    failed = 0
    try:
        print(f"1..{len(TESTS)}", flush=True)
        for i, (name, fn, todo) in enumerate(TESTS, 1):
            directive = f" # TODO {todo}" if todo else ""
            t0 = time.monotonic()
            try:
                fn()
                print(f"ok {i} - {name}{directive}", flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"not ok {i} - {name}{directive}", flush=True)
                diag(f"{type(e).__name__}: {e}")
                diag("".join(traceback.format_tb(e.__traceback__)[-2:]).rstrip())
                if not todo:
                    failed += 1
            diag(f"{time.monotonic() - t0:.3f}s")
            if not V.alive():
                diag("vesseld died; its log:\n" + V.log_text()[-4000:])
                print("Bail out! vesseld died", flush=True)
                return 1
    finally:
        V.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
