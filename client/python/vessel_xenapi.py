"""vessel_xenapi - a lean XenAPI client for Python, a drop-in for XenAPI.py.

    import vessel_xenapi as XenAPI
    session = XenAPI.Session('https://host/', ignore_ssl=True)
    session.xenapi.login_with_password('root', password, '1.0', 'my-script')
    for vm in session.xenapi.VM.get_all():
        print(session.xenapi.VM.get_name_label(vm))
    session.xenapi.logout()

The interface is that of xapi's python3/examples/XenAPI/XenAPI.py (Session,
xenapi_request, Failure, xapi_local, API_version, the re-login on
SESSION_INVALID); the wire is JSON-RPC 2.0 on /jsonrpc (xapi's
doc/content/xen-api/wire-protocol.md) over one kept-alive HTTP/1.1
connection, each request written with one send and each reply read straight
from the socket: no http.client, no XML. Python standard library only, 3.9+.

Values come back as XenAPI.py returns them: a 64-bit int is a string (xapi's
XML-RPC sends ints untyped, so XenAPI.py's callers see strings), unless
Session(native_ints=True). A datetime is its string ("20260821T02:00:23Z"),
where XenAPI.py gives an xmlrpc.client.DateTime whose str() is that string.

One Session is safe to share between threads (calls on it take turns).
"""
import datetime
import json
import os
import re
import select
import socket
import ssl
import threading
import time
import urllib.parse
import xmlrpc.client

API_VERSION_1_1 = '1.1'
API_VERSION_1_2 = '1.2'

# Bounds on what a reply may make the client hold before it is known to be
# garbage: one head, one chunk-size line.
MAX_HEAD = 64 * 1024
MAX_LINE = 4096
# A connection idle for longer is polled for the server's close before it
# carries a request: the next call then goes straight to a new connection.
# (A close the poll misses still shows as an EOF before any reply byte, which
# reconnects as well; the poll is a syscall a busy client need not pay.)
IDLE_CHECK = 0.1
STATUS_LINE = re.compile(rb'HTTP/1\.[01] [0-9]{3}(?: [^\r\n]*)?\Z')
# What a kept-alive connection the server closed while idle fails with
CLOSED = (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


class Failure(Exception):
    """A XenAPI error: details is the ErrorDescription, [CODE, p1, ...]."""

    def __init__(self, details):
        super().__init__(details)
        self.details = details

    def __str__(self):
        try:
            return str(self.details)
        except Exception as exn:  # a details list whose items cannot be printed
            return 'Xen-API failure: %s' % exn

    def _details_map(self):
        return {str(i): d for i, d in enumerate(self.details)}


class ProtocolError(xmlrpc.client.ProtocolError):
    """The server's reply broke HTTP or JSON-RPC: an HTTP status other than
    200, a garbage status line or header, a reply cut short, a body that is
    not a JSON-RPC reply. A subclass of xmlrpc.client.ProtocolError so that a
    caller's handler written for XenAPI.py catches it; errcode is the HTTP
    status, or 0 when the reply is not HTTP or not JSON-RPC."""

    def __init__(self, url, errcode, errmsg, headers=None):
        super().__init__(url, errcode, errmsg, headers or {})

    def __str__(self):
        if self.errcode:
            return '%s: HTTP %d %s' % (self.url, self.errcode, self.errmsg)
        return '%s: %s' % (self.url, self.errmsg)

    __repr__ = __str__


class _Stale(Exception):
    """A kept-alive connection was found closed before any byte of the reply
    came: the server ended it while it was idle."""


class UDSTransport:
    """XenAPI.py's marker for a unix socket: with it, Session's URI host names
    the socket's path with '_' for '/' ("http://_var_lib_xcp_xapi/")."""


class _Connection:
    """One HTTP/1.1 connection to a server, opened on the first request and
    kept alive between requests."""

    def __init__(self, url, address, unix_path, ssl_context, server_hostname, path, headers,
                 timeout):
        self.url = url
        self.address = address
        self.unix_path = unix_path
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.timeout = timeout
        self.sock = None
        self.buf = b''
        self.used = False  # a reply was read on this socket: it may have gone stale since
        self.replied = 0.0  # time.monotonic() of that reply
        host = 'localhost' if unix_path else server_hostname
        if ':' in host:
            host = '[%s]' % host  # an IPv6 address
        if address and address[1] != (443 if ssl_context else 80):
            host = '%s:%d' % (host, address[1])
        self.head = ('POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n'
                     '%sContent-Length: '
                     % (path, host, ''.join('%s: %s\r\n' % kv for kv in headers))).encode('latin-1')

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self.buf = b''

    def _connect(self):
        if self.unix_path:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(self.timeout)
                s.connect(self.unix_path)
            except BaseException:
                s.close()
                raise
        else:
            s = socket.create_connection(self.address, self.timeout)
            try:
                # The request is one write and the server answers it at once:
                # Nagle would only delay the next request behind the last ACK.
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.ssl_context is not None:
                    s = self.ssl_context.wrap_socket(s, server_hostname=self.server_hostname)
            except BaseException:
                s.close()
                raise
        self.sock = s
        self.buf = b''
        self.used = False
        self.poller = select.poll()
        self.poller.register(s.fileno(), select.POLLIN)

    def _idle_closed(self):
        """Whether the server ended the kept-alive connection while it was
        idle: with no request outstanding, anything to read (an EOF, a reset,
        a TLS close_notify, a 408 reply) means it will not serve another. One
        poll that does not wait."""
        return bool(self.poller.poll(0))

    def request(self, body):
        """POSTs @body; the reply's body. Reconnects once, and only when the
        kept-alive connection turns out closed before any byte of the reply
        came: a server that closes an idle connection ran nothing of a request
        it never read, while a call it may have run is never sent twice."""
        if self.sock is not None and (self.buf or time.monotonic() - self.replied > IDLE_CHECK
                                      and self._idle_closed()):
            self.close()
        if self.sock is None:
            self._connect()
        elif self.used:
            try:
                return self._exchange(body, True)
            except _Stale:
                self.close()
                self._connect()
        try:
            return self._exchange(body, False)
        except _Stale:
            raise self._error('connection closed before any reply') from None

    def _exchange(self, body, reused):
        self.got_any = False
        try:
            self.sock.sendall(b'%s%d\r\n\r\n%s' % (self.head, len(body), body))
            return self._read_reply()
        except _Stale:
            raise
        except CLOSED as e:
            self.close()
            if reused and not self.got_any:
                raise _Stale() from e
            raise
        except BaseException:
            # a timeout, a protocol error, an interrupt: the stream's place
            # in the reply is unknown, so the connection cannot serve again
            self.close()
            raise

    def _error(self, msg, status=0, reason='', headers=None):
        self.close()
        return ProtocolError(self.url, status, '%s %s' % (reason, msg) if status else msg,
                             headers)

    def _recv(self, what, size=65536):
        data = self.sock.recv(size)
        if not data:
            if not self.got_any:
                raise _Stale()
            raise self._error('reply cut short: connection closed %s' % what)
        self.got_any = True
        return data

    def _fill(self, n, what):
        """Reads until the buffer holds @n bytes (joined once, not grown by
        each read: a large get_all_records comes in many reads)."""
        have = len(self.buf)
        if have >= n:
            return
        parts = [self.buf]
        while have < n:
            data = self._recv('%s (%d of %d bytes)' % (what, have, n),
                              min(max(65536, n - have), 1 << 20))
            parts.append(data)
            have += len(data)
        self.buf = b''.join(parts)

    def _read_reply(self):
        while True:
            status, reason, head, fields, close = self._read_head()
            if status >= 200:
                break
            if status == 101:
                raise self._error('the server switched protocols', status, reason)
            # 1xx interim replies (100 Continue) come before the real one
        te = fields[b'transfer-encoding']
        if te is not None:
            if te.rsplit(b',', 1)[-1].strip() != b'chunked':
                raise self._error('unsupported Transfer-Encoding %r' % te)
            body = self._read_chunked()
        elif fields[b'content-length'] is not None:
            cl = fields[b'content-length']
            if not cl.isdigit():
                raise self._error('bad Content-Length %r' % cl)
            n = int(cl)
            self._fill(n, 'inside the body')
            body, self.buf = self.buf[:n], self.buf[n:]
        else:
            # HTTP/1.0-style: the body runs to the end of the connection
            close = True
            chunks = [self.buf]
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
            body = b''.join(chunks)
        self.used = True
        self.replied = time.monotonic()
        if close:
            self.close()
        if status != 200:
            headers = dict(line.decode('latin-1').split(':', 1)
                           for line in head.split(b'\r\n')[1:] if b':' in line)
            headers = {k.strip(): v.strip() for k, v in headers.items()}
            raise self._error(body[:200].decode('utf-8', 'replace'), status, reason, headers)
        return body

    def _read_head(self):
        while True:
            end = self.buf.find(b'\r\n\r\n')
            if end >= 0:
                break
            if len(self.buf) > MAX_HEAD:
                raise self._error('reply head longer than %d bytes' % MAX_HEAD)
            # garbage is refused as soon as it shows, not when (if ever) a
            # blank line follows it
            eol = self.buf.find(b'\r\n')
            first = self.buf[:eol] if eol >= 0 else self.buf[:5]
            if not (STATUS_LINE.match(first) if eol >= 0 else b'HTTP/'.startswith(first)):
                raise self._error('garbage status line %r' % self.buf[:80])
            self.buf += self._recv('in the reply head')
        head, self.buf = self.buf[:end], self.buf[end + 4:]
        eol = head.find(b'\r\n')
        first = head if eol < 0 else head[:eol]
        if not STATUS_LINE.match(first):
            raise self._error('garbage status line %r' % first[:80])
        status = int(first[9:12])
        reason = first[13:].decode('latin-1')
        # Only three fields matter to the framing: found in the lowered head
        # rather than parsed line by line, a third of a small call's time.
        low = head.lower()
        cl = _field_values(low, b'\r\ncontent-length:')
        if cl is not None and len(set(cl)) > 1:
            raise self._error('conflicting Content-Length headers')
        te = _field_values(low, b'\r\ntransfer-encoding:')
        conn = _field_values(low, b'\r\nconnection:')
        conn = b', '.join(conn) if conn else b''
        fields = {b'content-length': cl and cl[0], b'transfer-encoding': te and b', '.join(te)}
        if first.startswith(b'HTTP/1.0'):
            close = b'keep-alive' not in conn
        else:
            close = b'close' in conn
        return status, reason, head, fields, close

    def _read_line(self):
        while True:
            end = self.buf.find(b'\r\n')
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                return line
            if len(self.buf) > MAX_LINE:
                raise self._error('chunk line longer than %d bytes' % MAX_LINE)
            self.buf += self._recv('in a chunk header')

    def _read_chunked(self):
        chunks = []
        while True:
            line = self._read_line()
            size = line.split(b';', 1)[0].strip()  # chunk extensions are ignored
            try:
                n = int(size, 16)
            except ValueError:
                raise self._error('bad chunk size %r' % line[:80]) from None
            if n < 0 or size[:1] in (b'-', b'+'):
                raise self._error('bad chunk size %r' % line[:80])
            if n == 0:
                while self._read_line():  # trailer fields, up to the empty line
                    pass
                return b''.join(chunks)
            self._fill(n + 2, 'inside a chunk')
            if self.buf[n:n + 2] != b'\r\n':
                raise self._error('chunk of %d bytes not followed by CRLF' % n)
            chunks.append(self.buf[:n])
            self.buf = self.buf[n + 2:]


def _json_default(o):
    """Values XenAPI.py's XML-RPC sends that JSON has no type for."""
    if isinstance(o, xmlrpc.client.DateTime):
        return o.value  # xapi reads datetimes from strings too
    if isinstance(o, datetime.datetime):
        if o.tzinfo is not None:
            o = o.astimezone(datetime.timezone.utc)
        return o.strftime('%Y%m%dT%H:%M:%SZ')
    raise TypeError('%s is not a XenAPI value' % type(o).__name__)


_json_str = json.encoder.encode_basestring_ascii
_json_params = json.JSONEncoder(check_circular=False, default=_json_default).encode
try:
    # The encoder JSONEncoder wraps, called directly: a few microseconds
    # less for each call's params (json/encoder.py's own fast path).
    _c_encoder = json.encoder.c_make_encoder(None, _json_default, _json_str, None, ':', ',',
                                             False, False, True)
    if ''.join(_c_encoder(['a', 1, {'b': None}], 0)) == '["a",1,{"b":null}]':
        _json_params = lambda params: ''.join(_c_encoder(params, 0))  # noqa: E731
except (AttributeError, TypeError):
    pass


def _field_values(low, key):
    """The values of a header field in a lowered reply head, @key its
    b'\r\nname:'; None when it is absent."""
    i = low.find(key)
    if i < 0:
        return None
    vals = []
    while i >= 0:
        i += len(key)
        j = low.find(b'\r\n', i)
        vals.append(low[i:j if j >= 0 else len(low)].strip())
        i = low.find(key, i)
    return vals


def _parse_uri(uri, transport):
    """(display url, (host, port) or None, unix path or None, tls, host name, path)."""
    u = urllib.parse.urlsplit(uri)
    scheme = u.scheme.lower()
    path = u.path or '/'
    if scheme == 'unix':
        # unix:/path/to/xapi.sock or unix:///path/to/xapi.sock
        return uri, None, urllib.parse.unquote(u.path), False, 'localhost', '/jsonrpc'
    if scheme not in ('http', 'https'):
        raise ValueError('unsupported XenAPI URI scheme %r (http, https or unix)' % u.scheme)
    if not path.endswith('/jsonrpc'):
        path = path.rstrip('/') + '/jsonrpc'
    if isinstance(transport, UDSTransport):
        return uri, None, (u.hostname or u.netloc).replace('_', '/'), False, 'localhost', path
    if not u.hostname:
        raise ValueError('no host in XenAPI URI %r' % uri)
    tls = scheme == 'https'
    port = u.port or (443 if tls else 80)
    return uri, (u.hostname, port), None, tls, u.hostname, path


def _trace_headers():
    """The headers XenAPI.py adds from its environment: the caller's trace
    context (TRACEPARENT, BAGGAGE) and ORIGINATOR."""
    h = []
    for env, name in (('TRACEPARENT', 'traceparent'), ('BAGGAGE', 'baggage'),
                      ('ORIGINATOR', 'originator')):
        v = os.environ.get(env)
        if v and '\r' not in v and '\n' not in v:
            h.append((name, v))
    return h


class Session:
    """A XenAPI session on one server: session.xenapi.<class>.<message>(...)
    calls put the session ref first, as XenAPI.py's do.

    uri: http://host[:port]/, https://host[:port]/ or unix:/path/to/socket.
    ignore_ssl: do not verify the server's certificate (a self-signed host).
    context: an ssl.SSLContext for https (e.g. one trusting the host's CA).
    timeout: seconds a connect or a wait for the reply may take (default
    socket.getdefaulttimeout(): none unless set, as XenAPI.py).
    native_ints: 64-bit ints as Python ints instead of strings.
    transport (UDSTransport for XenAPI.py's unix socket URIs), encoding,
    verbose, allow_none: accepted for XenAPI.py's signature; None travels as
    JSON null."""

    def __init__(self, uri, transport=None, encoding=None, verbose=False, allow_none=True,
                 ignore_ssl=False, timeout=None, context=None, native_ints=False):
        url, address, unix_path, tls, hostname, path = _parse_uri(uri, transport)
        ctx = None
        if tls:
            if context is not None:
                ctx = context
            elif ignore_ssl:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                ctx = ssl.create_default_context()
        self.__dict__.update(
            transport=transport,
            _conn=_Connection(url, address, unix_path, ctx, hostname, path, _trace_headers(),
                              socket.getdefaulttimeout() if timeout is None else timeout),
            _lock=threading.Lock(),
            _next_id=0,
            _url=url,
            _loads=json.JSONDecoder(parse_int=None if native_ints else str).decode,
            _session=None,
            last_login_method=None,
            last_login_params=None,
            _API_version=API_VERSION_1_1,
            xenapi=_Dispatcher(self.xenapi_request, None))

    # ---------------------------------------------------------------- the wire

    def _call(self, method, params):
        """One JSON-RPC call; its result, or Failure with the error's details."""
        with self._lock:
            self._next_id += 1
            rid = self._next_id
            body = b'{"jsonrpc":"2.0","method":%s,"params":%s,"id":%d}' % (
                _json_str(method).encode(), _json_params(params).encode(), rid)
            reply = self._conn.request(body)
        try:
            r = self._loads(reply.decode('utf-8'))
        except ValueError as e:
            raise ProtocolError(self._url, 0, 'reply to %s is not JSON (%s): %r'
                                % (method, e, reply[:200])) from None
        if type(r) is not dict or str(r.get('id')) != str(rid):
            raise ProtocolError(self._url, 0, 'reply to %s is not its JSON-RPC reply: %r'
                                % (method, reply[:200]))
        if 'error' in r and r['error'] is not None:
            raise Failure(_error_details(r['error']))
        if 'result' not in r:
            raise ProtocolError(self._url, 0, 'reply to %s has neither result nor error: %r'
                                % (method, reply[:200]))
        return r['result']

    def _checked(self, method, params):
        """_call, with SESSION_INVALID returned as a value (XenAPI.py's
        _RECONNECT_AND_RETRY)."""
        try:
            return self._call(method, params)
        except Failure as f:
            if f.details and f.details[0] == 'SESSION_INVALID':
                return _RECONNECT_AND_RETRY
            raise

    # ------------------------------------------------------- XenAPI.py's API

    def xenapi_request(self, methodname, params):
        if methodname.startswith('login') or methodname.startswith('slave_local'):
            self._login(methodname, params)
            return None
        if methodname in ('session.login_with_password', 'session.slave_local_login_with_password'):
            self._login(methodname[len('session.'):], params)
            return None
        if methodname in ('logout', 'session.logout'):
            self._logout()
            return None
        for _ in range(3):
            result = self._checked(methodname, (self._session,) + tuple(params))
            if result is not _RECONNECT_AND_RETRY:
                return result
            if not self.last_login_method:
                raise xmlrpc.client.Fault(401, 'You must log in')
            self._login(self.last_login_method, self.last_login_params)
        raise xmlrpc.client.Fault(500, 'Tried 3 times to get a valid session, but failed')

    def _login(self, method, params):
        try:
            result = self._checked('session.' + method, tuple(params))
        except socket.timeout:
            raise xmlrpc.client.Fault(504, 'The connection timed out') from None
        if result is _RECONNECT_AND_RETRY:
            raise xmlrpc.client.Fault(500, 'Received SESSION_INVALID when logging in')
        self._session = result
        self.last_login_method = method
        self.last_login_params = params
        self._API_version = None  # read from the server when first asked for

    def _logout(self):
        try:
            if self._session is None:
                return None
            if (self.last_login_method or '').startswith('slave_local'):
                return self._call('session.local_logout', (self._session,))
            return self._call('session.logout', (self._session,))
        finally:
            self._session = None
            self.last_login_method = None
            self.last_login_params = None
            self._API_version = API_VERSION_1_1

    def _get_api_version(self):
        pool = self.xenapi.pool.get_all()[0]
        host = self.xenapi.pool.get_master(pool)
        major = self.xenapi.host.get_API_version_major(host)
        minor = self.xenapi.host.get_API_version_minor(host)
        return '%s.%s' % (major, minor)

    @property
    def API_version(self):
        if not self._API_version:
            self._API_version = self._get_api_version()
        return self._API_version

    def close(self):
        """Closes the connection (the session stays valid on the server)."""
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __call__(self, attr):
        # xmlrpc.client.ServerProxy's: session('close')() closes the connection
        if attr == 'close':
            return self.close
        if attr == 'transport':
            return self._conn
        raise AttributeError('Attribute %r not found' % (attr,))

    def __getattr__(self, name):
        if name == 'handle':
            return self._session
        if name.startswith('login') or name.startswith('slave_local'):
            return lambda *params: self._login(name, params)
        if name == 'logout':
            return _Dispatcher(self.xenapi_request, 'logout')
        if name.startswith('_'):
            raise AttributeError(name)
        # session.VM.get_all(ref): the raw reply, as ServerProxy gives it
        return _Dispatcher(self._raw_request, name)

    def _raw_request(self, methodname, params):
        try:
            return {'Status': 'Success', 'Value': self._call(methodname, tuple(params))}
        except Failure as f:
            return {'Status': 'Failure', 'ErrorDescription': f.details}


# XenAPI.py's marker for "log in again and retry"
_RECONNECT_AND_RETRY = object()


def _error_details(err):
    """[CODE, p1, ...] from a JSON-RPC error: v2's {"code", "message",
    "data"}, v1's (and older servers' v2) bare array."""
    if isinstance(err, list):
        return [str(e) for e in err]
    if isinstance(err, dict):
        data = err.get('data')
        if isinstance(data, list):
            params = [str(d) for d in data]
        elif data is None:
            params = []
        else:
            params = [str(data)]
        return [str(err.get('message', ''))] + params
    return [str(err)]


def xapi_local(path=None):
    """A Session on vesseld's local socket: @path, else $XE_UNIX_SOCKET (as
    xe), else ./var/xapi.sock (the socket of a vesseld run by `make run`).
    Logins on it are the local superuser's, whatever the password."""
    path = path or os.environ.get('XE_UNIX_SOCKET') or os.path.join('var', 'xapi.sock')
    return Session('unix:' + urllib.parse.quote(os.path.abspath(path)))


class _Dispatcher:
    """session.xenapi.VM.start -> send('VM.start', args). Each attribute is
    kept once made, so a repeated call costs two attribute lookups."""

    def __init__(self, send, name):
        self.__send = send
        self.__name = name

    def __repr__(self):
        if self.__name:
            return '<vessel_xenapi._Dispatcher for %s>' % self.__name
        return '<vessel_xenapi._Dispatcher>'

    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        d = _Dispatcher(self.__send, name if self.__name is None else
                        '%s.%s' % (self.__name, name))
        self.__dict__[name] = d
        return d

    def __call__(self, *args):
        return self.__send(self.__name, args)
