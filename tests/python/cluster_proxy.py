"""A small HTTP/1.1 proxy in front of a cluster's nodes for the cluster mode of conftest.py
(DISKSNAP_PYTEST_CLUSTER=N): every REQUEST (not every connection) goes to a node chosen at
random, so a client's keep-alive connection is spread over the nodes as a load balancer that
balances requests would spread it, and a job started through one node is polled through others.

Byte-faithful: the request's head (method, target, headers including Host, which Tencent's and
others' signatures cover) and body are sent as they came, and the node's answer is streamed
back as it comes. Only the message framing is read (Content-Length, chunked), to know where a
request or an answer ends. Each forwarded request gets a new connection to its node, closed
after the answer (a node sees each request on a connection of its own).

The TLS listener terminates TLS with the first node's certificate (the same certificate every
node serves, see conftest.py) and forwards over TLS to the chosen node's TLS listener: the nodes
see HTTPS where the client spoke HTTPS.

Standard library only: each suite runs in its own venv.
"""
import random
import socket
import ssl
import threading

MAX_HEAD = 256 * 1024
PIECE = 64 * 1024


class ProxyError(Exception):
    pass


def _read_head(rfile):
    """The request or status line and headers up to the blank line, raw; None at a clean EOF."""
    out = bytearray()
    while True:
        line = rfile.readline(MAX_HEAD + 1)
        if not line:
            if out:
                raise ProxyError("connection closed in the middle of a message head")
            return None
        if not out and line in (b"\r\n", b"\n"):
            # RFC 9112 2.2: an empty line before a request line is ignored
            continue
        out += line
        if len(out) > MAX_HEAD:
            raise ProxyError("message head too large")
        if line in (b"\r\n", b"\n"):
            return bytes(out)


def _parse(head):
    lines = head.decode("latin-1").split("\n")
    first = lines[0].rstrip("\r")
    headers = {}
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line or ":" not in line:
            continue
        name, value = line.split(":", 1)
        name = name.strip().lower()
        headers[name] = (headers[name] + ", " if name in headers else "") + value.strip()
    return first, headers


def _copy_exact(rfile, send, n):
    while n > 0:
        piece = rfile.read(min(n, PIECE))
        if not piece:
            raise ProxyError("connection closed in the middle of a body")
        send(piece)
        n -= len(piece)


def _copy_chunked(rfile, send):
    while True:
        line = rfile.readline(MAX_HEAD)
        if not line:
            raise ProxyError("connection closed in the middle of a chunked body")
        send(line)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # trailers, then the blank line
            while True:
                t = rfile.readline(MAX_HEAD)
                if not t:
                    raise ProxyError("connection closed in a chunked body's trailers")
                send(t)
                if t in (b"\r\n", b"\n"):
                    return
        _copy_exact(rfile, send, size + 2)  # the chunk and its CRLF


def _copy_body(rfile, send, headers):
    """Copy a message body framed by its headers; False when it runs to the end of the connection."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        _copy_chunked(rfile, send)
    elif "content-length" in headers:
        _copy_exact(rfile, send, int(headers["content-length"].split(",")[0]))
    else:
        return False
    return True


class Proxy:
    """Listens on 127.0.0.1 (and on a TLS port when `certfile` is given) and forwards each
    request to one of `nodes`, a list of (name, port, tls_port)."""

    def __init__(self, nodes, certfile=None, keyfile=None, cafile=None, log_path=None, seed=None):
        self.nodes = nodes
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {name: 0 for name, _, _ in nodes}
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.listener = self._listen()
        self.port = self.listener.getsockname()[1]
        self.tls_listener = self._listen() if certfile else None
        self.tls_port = self.tls_listener.getsockname()[1] if certfile else None
        self.certfile, self.keyfile, self.cafile = certfile, keyfile, cafile
        self.conns = set()
        self.closed = False

    @staticmethod
    def _listen():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        return s

    def start(self):
        """Start accepting (the certificate files must exist by now)."""
        if self.tls_listener:
            self.front_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.front_ctx.load_cert_chain(self.certfile, self.keyfile)
            self.front_ctx.set_alpn_protocols(["http/1.1"])
            self.back_ctx = ssl.create_default_context(cafile=self.cafile)
            self.back_ctx.set_alpn_protocols(["http/1.1"])
            threading.Thread(target=self._accept, args=(self.tls_listener, True), daemon=True).start()
        threading.Thread(target=self._accept, args=(self.listener, False), daemon=True).start()

    def stop(self):
        self.closed = True
        for s in (self.listener, self.tls_listener):
            if s:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.log:
            self.log.close()

    def _accept(self, listener, tls):
        while not self.closed:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, tls), daemon=True).start()

    def _pick(self):
        with self.lock:
            node = self.rng.choice(self.nodes)
            self.counts[node[0]] += 1
        return node

    def _note(self, text):
        if self.log:
            with self.lock:
                self.log.write(text + "\n")

    def _serve(self, client, tls):
        with self.lock:
            self.conns.add(client)
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                client = self.front_ctx.wrap_socket(client, server_side=True)
            rfile = client.makefile("rb")
            while True:
                head = _read_head(rfile)
                if head is None:
                    return
                first, headers = _parse(head)
                method = first.split(" ", 1)[0]
                name, port, tls_port = self._pick()
                self._note(f"{name} {'https' if tls else 'http'} {first}")
                if not self._forward(client, rfile, head, headers, method, port if not tls else tls_port, tls):
                    return
                version = first.rsplit(" ", 1)[-1]
                conn_hdr = headers.get("connection", "").lower()
                if "close" in conn_hdr or (version == "HTTP/1.0" and "keep-alive" not in conn_hdr):
                    return
        except (OSError, ProxyError, ValueError, ssl.SSLError) as e:
            self._note(f"connection ended: {e!r}")
        finally:
            with self.lock:
                self.conns.discard(client)
            try:
                client.close()
            except OSError:
                pass

    def _forward(self, client, rfile, head, headers, method, port, tls):
        """One request to the node on `port`, its answer back; False when the client connection
        must end after it (the answer ran to the end of the node's connection, or said close)."""
        up = socket.create_connection(("127.0.0.1", port), timeout=600)
        try:
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                up = self.back_ctx.wrap_socket(up, server_hostname="127.0.0.1")
            up.sendall(head)
            _copy_body(rfile, up.sendall, headers)  # a request without framing has no body
            urfile = up.makefile("rb")
            while True:
                rhead = _read_head(urfile)
                if rhead is None:
                    raise ProxyError(f"node on port {port} closed the connection without an answer")
                client.sendall(rhead)
                status_line, rheaders = _parse(rhead)
                status = int(status_line.split(" ", 2)[1])
                if 100 <= status < 200 and status != 101:
                    continue  # an interim answer (100 Continue): the final one follows
                break
            if method == "HEAD" or status in (204, 304):
                framed = True
            else:
                framed = _copy_body(urfile, client.sendall, rheaders)
                if not framed:
                    # no framing: the body runs to the end of the node's connection
                    while True:
                        piece = urfile.read1(PIECE)
                        if not piece:
                            break
                        client.sendall(piece)
            return framed and "close" not in rheaders.get("connection", "").lower()
        finally:
            up.close()
