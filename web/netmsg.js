// netmsg.js: the browser side of netmsg's Messages API. A tab is a peer
// with an identity; it reaches netmsg Hosts and other tabs by identity
// through a netmsg signaling server (over WebSocket), and talks to each
// over a WebRTC peer connection. One ES module, no dependencies, no build
// step. See docs/browser.md for the protocol and the trust model.
//
//   import { connect, SEND_RELIABLE } from "/netmsg.js";
//   const peer = await connect("ws://127.0.0.1:10001/", "str:web-alice");
//   peer.addEventListener("sessionrequest", e => peer.acceptSessionWithUser(e.detail.identity));
//   peer.sendMessageToUser("str:server", "hello", SEND_RELIABLE, 0);
//   for await (const m of peer.receive(0)) console.log(m.identity, m.text);

// Send flags (GNS's values).
export const SEND_UNRELIABLE = 0;
export const SEND_NO_NAGLE = 1;
export const SEND_NO_DELAY = 4;
export const SEND_RELIABLE = 8;
export const SEND_AUTO_RESTART_BROKEN_SESSION = 32;

// Connection states (GNS's values).
export const State = Object.freeze({ None: 0, Connecting: 1, Connected: 3, ClosedByPeer: 4, ProblemDetectedLocally: 5 });

// End reasons used here (GNS's values).
export const End = Object.freeze({ AppGeneric: 1000, SessionClosed: 1001, IdleTimeout: 1002, MiscGeneric: 5001, MiscInternalError: 5002, MiscTimeout: 5003, MiscP2PNATFirewall: 5009 });

// Results a send fails with (GNS's EResult values), as NetmsgError.result.
export const Result = Object.freeze({ NoConnection: 3, InvalidParam: 8, LimitExceeded: 25 });

export class NetmsgError extends Error {
  constructor(message, result, info) {
    super(message);
    this.name = "NetmsgError";
    this.result = result;
    this.info = info;
  }
}

// The identity prefix netmsg Hosts treat as a browser by default.
export const BROWSER_PREFIX = "str:web-";

// randomIdentity returns "str:web-" and 16 random hex digits.
export function randomIdentity() {
  return BROWSER_PREFIX + hex(crypto.getRandomValues(new Uint8Array(8)));
}

// Framing (package internal/rtcframe on the Go side).
const K_DATA = 1, K_CLOSE = 2, K_PING = 3, K_PONG = 4;
const HDR = 12;
const MAX_FRAME = 16 << 10;
const MAX_FRAGMENT = MAX_FRAME - HDR;
const MAX_MESSAGE = 512 << 10;
const MAX_FRAGMENTS = Math.ceil(MAX_MESSAGE / MAX_FRAGMENT);
const MAX_DEBUG = 127;
const MAX_PARTIAL = 20;
const FLAG_RELIABLE = 1;

// Tuning, as the Go side's.
const SIGNAL_PREFIX = "WRTC";
const OFFER_REPEAT = 1000;
const OFFER_STALE = 4000;
const REQUEST_REPEAT = 1000;
const PING_EVERY = 1000;
const TICK = 100;
const SEND_BUFFER = 512 << 10;
const UNRELIABLE_BUFFER = 256 << 10;
const RECV_QUEUE = 10000; // unread messages of one session at most
const KEEPALIVE = 30000;
const ICE_WAIT = 1000; // how long sessions made just after registering wait for the server's ICE line

const enc = new TextEncoder();
const dec = new TextDecoder();

function hex(b) {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

function unhex(s) {
  if (s.length % 2 || /[^0-9a-fA-F]/.test(s)) throw new Error("bad hex");
  const b = new Uint8Array(s.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(s.substr(2 * i, 2), 16);
  return b;
}

function bytesOf(data) {
  if (typeof data === "string") return enc.encode(data);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new NetmsgError("netmsg: data must be a string, an ArrayBuffer or a typed array", Result.InvalidParam);
}

function dataFrame(flags, channel, num, index, count, payload) {
  const f = new Uint8Array(HDR + payload.length);
  const v = new DataView(f.buffer);
  f[0] = K_DATA;
  f[1] = flags;
  v.setInt32(2, channel, true);
  v.setUint32(6, num, true);
  f[10] = index;
  f[11] = count;
  f.set(payload, HDR);
  return f;
}

function closeFrame(reason, debug) {
  const d = enc.encode(debug).subarray(0, MAX_DEBUG);
  const f = new Uint8Array(5 + d.length);
  f[0] = K_CLOSE;
  new DataView(f.buffer).setInt32(1, reason, true);
  f.set(d, 5);
  return f;
}

function pingFrame(kind, v) {
  const f = new Uint8Array(9);
  f[0] = kind;
  new DataView(f.buffer).setBigUint64(1, v, true);
  return f;
}

// parseFrame returns the frame, or null for a malformed one.
function parseFrame(b) {
  if (b.length === 0) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (b[0]) {
    case K_DATA: {
      if (b.length < HDR) return null;
      const d = { kind: K_DATA, flags: b[1], channel: v.getInt32(2, true), num: v.getUint32(6, true), index: b[10], count: b[11], payload: b.subarray(HDR) };
      if (d.count === 0 || d.count > MAX_FRAGMENTS || d.index >= d.count || d.payload.length > MAX_FRAGMENT) return null;
      return d;
    }
    case K_CLOSE:
      if (b.length < 5) return null;
      return { kind: K_CLOSE, reason: v.getInt32(1, true), debug: dec.decode(b.subarray(5, 5 + MAX_DEBUG)) };
    case K_PING:
    case K_PONG:
      if (b.length < 9) return null;
      return { kind: b[0], v: v.getBigUint64(1, true) };
  }
  return null;
}

function concat(parts, size) {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// A received message.
export class Message {
  constructor(identity, channel, data, flags, num) {
    this.identity = identity;
    this.channel = channel;
    this.data = data;
    this.flags = flags;
    this.messageNumber = num;
    this.timeReceived = performance.now();
  }
  get text() {
    return dec.decode(this.data);
  }
}

// One session with a peer.
class Session {
  constructor(peer, identity, sid, offerer) {
    this.peer = peer;
    this.identity = identity;
    this.sid = sid;
    this.offerer = offerer;
    this.state = State.Connecting;
    this.accepted = false;
    this.failed = false;
    this.ended = false;
    this.info = null; // the end, once failed
    this.pc = null;
    this.rel = null;
    this.unrel = null;
    this.opened = 0;
    this.up = false;
    this.queue = [];
    this.queued = 0;
    this.num = 0;
    this.localBlob = null;
    this.remoteSDP = "";
    this.answered = false;
    this.started = false;
    this.offerSeen = 0;
    this.offerSent = 0;
    this.requestAt = 0;
    this.connectBy = 0;
    this.pingNext = 0;
    this.lastUsed = performance.now();
    this.rtt = 0;
    this.route = null;
    this.open = new Set();
    this.unread = 0;
    this.rrel = { parts: null, size: 0, num: 0, next: 0 };
    this.partial = []; // unreliable messages waiting for fragments
  }
}

// connect registers identity with the signaling server at url (ws:// or
// wss://) and resolves to a Peer. Options:
//   cert, key: the certificate (bytes or hex, GNS's serialized form, as
//     `netmsg cert issue` writes) and the Ed25519 private key (a 32-byte
//     seed as bytes or hex, or a CryptoKey) for the authenticated
//     protocol; without them the trivial protocol is spoken.
//   iceServers: RTCIceServer list; default: the TURN and STUN servers the
//     authenticated server hands out, else none.
//   iceTransportPolicy: "all" (default) or "relay".
//   connectTimeout: ms a session may take to connect (default 10000).
export async function connect(url, identity, opts = {}) {
  const peer = new Peer(url, identity, opts);
  await peer._open();
  return peer;
}

// Peer is a tab's attachment: the Messages API. Events (EventTarget):
// "sessionrequest", "sessionconnected", "sessionfailed",
// "sessionclosed" (closed by the peer), each with detail {identity, info};
// "close" when the signaling connection ends.
export class Peer extends EventTarget {
  constructor(url, identity, opts) {
    super();
    this.url = url;
    this.identity = identity;
    this.opts = opts;
    this.sessions = new Map();
    this.channels = new Map();
    this.known = new Set(); // peers that offered
    this.iceServers = opts.iceServers || null;
    this.handedICE = [];
    this.gotICE = null; // resolves at the first ICE line (authenticated)
    this.iceBy = 0; // until when a new session waits for it
    this.closed = false;
    this.ws = null;
    this.timer = 0;
    this.keepalive = 0;
    this.stats = { signalsDropped: 0, framesDropped: 0 };
  }

  async _open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    const opts = this.opts;
    let registered, failed;
    const done = new Promise((res, rej) => { registered = res; failed = rej; });
    const auth = opts.cert !== undefined;
    ws.onopen = async () => {
      if (!auth) {
        ws.send(this.identity);
        registered();
        return;
      }
      const cert = typeof opts.cert === "string" ? opts.cert : hex(opts.cert);
      ws.send(`NETMSG-SIGNAL/1 ${this.identity} ${cert}`);
    };
    ws.onerror = () => failed(new Error("netmsg: signaling connection failed"));
    ws.onclose = () => {
      failed(new Error("netmsg: signaling connection closed"));
      if (!this.closed) {
        this.closed = true;
        this._stop();
        this.dispatchEvent(new CustomEvent("close"));
      }
    };
    ws.onmessage = async (e) => {
      if (typeof e.data !== "string") return;
      for (const line of e.data.split("\n")) {
        if (line === "") continue;
        const sp = line.indexOf(" ");
        const word = sp < 0 ? line : line.slice(0, sp);
        const rest = sp < 0 ? "" : line.slice(sp + 1);
        if (word.includes(":")) {
          this._signal(word, rest);
        } else if (word === "CHALLENGE" && auth) {
          try {
            const sig = await sign(opts.key, proof(this.identity, unhex(rest)));
            ws.send("PROOF " + hex(sig));
          } catch (err) {
            failed(err);
            ws.close();
          }
        } else if (word === "OK") {
          ws.send("WANT ice");
          this.iceBy = performance.now() + ICE_WAIT;
          this.gotICE = new Promise((r) => { this._iceArrived = r; });
          this.keepalive = setInterval(() => ws.readyState === 1 && ws.send(""), KEEPALIVE);
          registered();
        } else if (word === "ERR") {
          failed(new Error("netmsg: refused by the signaling server: " + rest));
        } else if (word === "ICE") {
          this._ice(rest);
        }
      }
    };
    await done;
    this.timer = setInterval(() => this._tick(), TICK);
  }

  // close ends every session (the peers are told) and the signaling
  // connection.
  close() {
    for (const s of [...this.sessions.values()]) this._free(s, End.AppGeneric, "peer closed");
    this.closed = true;
    this._stop();
    setTimeout(() => this.ws.close(), 50);
  }

  _stop() {
    clearInterval(this.timer);
    clearInterval(this.keepalive);
    for (const q of this.channels.values()) for (const w of q.waiters.splice(0)) w();
  }

  _ice(rest) {
    const kv = {};
    for (const f of rest.split(" ")) {
      const i = f.indexOf("=");
      if (i > 0) kv[f.slice(0, i)] = f.slice(i + 1);
    }
    const list = [];
    for (const s of (kv.turn || "").split(",")) if (s) list.push({ urls: "turn:" + s + "?transport=udp", username: kv.user, credential: kv.pass });
    for (const s of (kv.stun || "").split(",")) if (s) list.push({ urls: "stun:" + s });
    this.handedICE = list;
    if (this._iceArrived) this._iceArrived();
    const ttl = parseInt(kv.ttl, 10);
    if (ttl > 0) setTimeout(() => !this.closed && this.ws.send("WANT ice"), (ttl * 1000) / 2);
  }

  _sendSignal(to, obj) {
    if (this.ws.readyState !== 1) return;
    this.ws.send(to + " " + hex(enc.encode(SIGNAL_PREFIX + JSON.stringify(obj))));
  }

  _signal(from, h) {
    let m;
    try {
      const b = unhex(h);
      const s = dec.decode(b);
      if (!s.startsWith(SIGNAL_PREFIX)) return; // a GNS rendezvous: not for a browser
      m = JSON.parse(s.slice(SIGNAL_PREFIX.length));
    } catch {
      this.stats.signalsDropped++;
      return;
    }
    if (typeof m.s !== "string" || !m.s || m.s.length > 64) return;
    let s = this.sessions.get(from);
    const now = performance.now();
    switch (m.k) {
      case "offer": {
        this.known.add(from);
        if (s && s.sid === m.s) {
          s.offerSeen = now;
          if (!s.offerer && s.localBlob) this._sendSignal(from, s.localBlob);
          return;
        }
        let queue = [], accepted = false;
        if (s && s.offerer && !s.answered && s.state === State.Connecting && !s.failed) {
          if (this.identity < from) return; // ours wins
          queue = s.queue;
          s.queue = [];
          accepted = true;
          this._end(s, 0, "");
        } else if (s) {
          this._free(s, End.SessionClosed, "Session replaced");
        }
        s = this._newSession(from, m.s, false);
        s.remoteSDP = m.sdp;
        s.offerSeen = now;
        s.queue = queue;
        s.queued = queue.reduce((n, q) => n + q.data.length, 0);
        if (accepted) {
          this._accept(s);
          return;
        }
        this._request(s);
        return;
      }
      case "answer":
        if (!s || s.sid !== m.s || !s.offerer || s.answered || s.ended) return;
        s.remoteSDP = m.sdp;
        if (!s.localBlob) return;
        s.answered = true;
        s.pc.setRemoteDescription({ type: "answer", sdp: m.sdp }).catch((e) => this._fail(s, State.ProblemDetectedLocally, End.MiscGeneric, "WebRTC: bad answer: " + e));
        return;
      case "bye":
        if (!s || s.sid !== m.s) return;
        this._closedByPeer(s, m.r | 0, m.d || "");
        return;
    }
  }

  _newSession(identity, sid, offerer) {
    const s = new Session(this, identity, sid, offerer);
    this.sessions.set(identity, s);
    return s;
  }

  _request(s) {
    s.requestAt = performance.now() + REQUEST_REPEAT;
    this.dispatchEvent(new CustomEvent("sessionrequest", { detail: { identity: s.identity } }));
  }

  _accept(s) {
    if (s.accepted) return;
    s.accepted = true;
    s.requestAt = 0;
    s.connectBy = performance.now() + (this.opts.connectTimeout || 10000);
    s.lastUsed = performance.now();
    if (!s.started) {
      s.started = true;
      this._start(s, s.offerer ? "" : s.remoteSDP);
    }
  }

  _dial(identity) {
    const s = this._newSession(identity, hex(crypto.getRandomValues(new Uint8Array(8))), true);
    s.accepted = true;
    s.started = true;
    s.connectBy = performance.now() + (this.opts.connectTimeout || 10000);
    this._start(s, "");
    return s;
  }

  async _start(s, offer) {
    if (!this.iceServers && this.gotICE && performance.now() < this.iceBy) {
      // Just registered: the server's TURN credentials may be on their way.
      await Promise.race([this.gotICE, new Promise((r) => setTimeout(r, this.iceBy - performance.now()))]);
    }
    const conf = { iceServers: this.iceServers || this.handedICE };
    if (this.opts.iceTransportPolicy) conf.iceTransportPolicy = this.opts.iceTransportPolicy;
    try {
      const pc = new RTCPeerConnection(conf);
      s.pc = pc;
      if (s.ended) {
        pc.close();
        return;
      }
      s.rel = pc.createDataChannel("reliable", { negotiated: true, id: 0 });
      s.unrel = pc.createDataChannel("unreliable", { negotiated: true, id: 1, ordered: false, maxRetransmits: 0 });
      for (const [dc, reliable] of [[s.rel, true], [s.unrel, false]]) {
        dc.binaryType = "arraybuffer";
        dc.onopen = () => this._opened(s);
        dc.onclose = () => this._lost(s, "data channel closed");
        dc.onmessage = (e) => this._receive(s, new Uint8Array(e.data), reliable);
      }
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "failed") this._lost(s, "ICE failed");
      };
      const gathered = new Promise((res) => {
        pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && res());
        setTimeout(res, this.opts.connectTimeout || 10000);
      });
      if (offer) {
        await pc.setRemoteDescription({ type: "offer", sdp: offer });
        await pc.setLocalDescription(await pc.createAnswer());
      } else {
        await pc.setLocalDescription(await pc.createOffer());
      }
      if (pc.iceGatheringState !== "complete") await gathered;
      if (s.ended) return;
      s.localBlob = { k: offer ? "answer" : "offer", s: s.sid, sdp: pc.localDescription.sdp };
      this._sendSignal(s.identity, s.localBlob);
      s.offerSent = performance.now();
      if (s.offerer && s.remoteSDP && !s.answered) {
        s.answered = true;
        await pc.setRemoteDescription({ type: "answer", sdp: s.remoteSDP });
      }
    } catch (e) {
      this._fail(s, State.ProblemDetectedLocally, End.MiscGeneric, "WebRTC: " + e);
    }
  }

  _opened(s) {
    if (++s.opened < 2 || s.up || s.ended) return;
    s.up = true;
    for (const q of s.queue) this._sendFrames(s, q.channel, q.data, FLAG_RELIABLE, s.rel);
    s.queue = [];
    s.queued = 0;
    if (s.state !== State.Connecting) return;
    s.state = State.Connected;
    s.lastUsed = performance.now();
    s.pingNext = 0;
    this._readRoute(s).then(() => {
      this.dispatchEvent(new CustomEvent("sessionconnected", { detail: { identity: s.identity, info: this.getSessionConnectionInfo(s.identity) } }));
    });
  }

  async _readRoute(s) {
    try {
      const stats = await s.pc.getStats();
      let pair = null;
      stats.forEach((r) => {
        if (r.type === "transport" && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
      });
      if (!pair) stats.forEach((r) => { if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r; });
      if (!pair) return;
      const l = stats.get(pair.localCandidateId), r = stats.get(pair.remoteCandidateId);
      if (!l || !r) return;
      const relayed = l.candidateType === "relay" || r.candidateType === "relay";
      s.route = {
        relayed,
        local: `${l.candidateType} ${l.address || l.ip}:${l.port}`,
        remote: `${r.candidateType} ${r.address || r.ip}:${r.port}`,
      };
      if (pair.currentRoundTripTime > 0 && !s.rtt) s.rtt = pair.currentRoundTripTime * 1000;
    } catch {}
  }

  _sendFrames(s, channel, data, flags, dc) {
    const num = s.num >>> 0;
    s.num = (s.num + 1) >>> 0;
    const count = Math.max(1, Math.ceil(data.length / MAX_FRAGMENT));
    for (let i = 0; i < count; i++) {
      dc.send(dataFrame(flags, channel, num, i, count, data.subarray(i * MAX_FRAGMENT, Math.min(data.length, (i + 1) * MAX_FRAGMENT))));
    }
  }

  // sendMessageToUser sends data (a string, ArrayBuffer or typed array)
  // to identity on channel, making a session if there is none. It throws
  // a NetmsgError: Result.InvalidParam (over 512 KiB), LimitExceeded (the
  // send buffer is full), NoConnection (the session failed: until
  // closeSessionWithUser, or a send with
  // SEND_AUTO_RESTART_BROKEN_SESSION).
  sendMessageToUser(identity, data, flags = SEND_RELIABLE, channel = 0) {
    const b = bytesOf(data);
    if (b.length > MAX_MESSAGE) throw new NetmsgError(`netmsg: message of ${b.length} bytes over the ${MAX_MESSAGE} limit`, Result.InvalidParam);
    if (this.closed) throw new NetmsgError("netmsg: closed", Result.NoConnection);
    let s = this.sessions.get(identity);
    if (s && s.failed) {
      if (!(flags & SEND_AUTO_RESTART_BROKEN_SESSION)) throw new NetmsgError(`netmsg: session with ${identity} ended (${s.info.endReason} ${s.info.endDebug})`, Result.NoConnection, s.info);
      this._free(s, End.SessionClosed, "Session restarted");
      s = null;
    }
    if (!s) s = this._dial(identity);
    else this._accept(s);
    s.lastUsed = performance.now();
    s.open.add(channel);
    if (!s.up) {
      if (s.queued + b.length > SEND_BUFFER) throw new NetmsgError(`netmsg: ${s.queued} bytes wait for the session`, Result.LimitExceeded);
      s.queue.push({ channel, data: b.slice() });
      s.queued += b.length;
      return;
    }
    const reliable = (flags & SEND_RELIABLE) !== 0;
    const dc = reliable ? s.rel : s.unrel;
    if (dc.bufferedAmount > (reliable ? SEND_BUFFER : UNRELIABLE_BUFFER)) throw new NetmsgError(`netmsg: ${dc.bufferedAmount} bytes buffered`, Result.LimitExceeded);
    try {
      this._sendFrames(s, channel, b, reliable ? FLAG_RELIABLE : 0, dc);
    } catch (e) {
      throw new NetmsgError("netmsg: send: " + e, Result.NoConnection);
    }
  }

  // bufferedAmount is what waits to leave for identity's session
  // (reliable), for senders that pace themselves.
  bufferedAmount(identity) {
    const s = this.sessions.get(identity);
    if (!s) return 0;
    return s.up ? s.rel.bufferedAmount : s.queued;
  }

  // waitSendBuffer resolves once at most below bytes wait to leave for
  // identity's session, for a sender that keeps its pipe full.
  async waitSendBuffer(identity, below = 256 << 10) {
    for (;;) {
      const s = this.sessions.get(identity);
      if (!s || s.ended || this.bufferedAmount(identity) <= below) return;
      if (!s.up) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      s.rel.bufferedAmountLowThreshold = below;
      await new Promise((r) => {
        s.rel.addEventListener("bufferedamountlow", r, { once: true });
        setTimeout(r, 100);
      });
    }
  }

  _receive(s, b, reliable) {
    const f = parseFrame(b);
    if (!f) {
      this.stats.framesDropped++;
      if (reliable) this._fail(s, State.ProblemDetectedLocally, End.MiscInternalError, "WebRTC: malformed frame");
      return;
    }
    switch (f.kind) {
      case K_DATA: {
        const msg = reliable ? this._reassembleReliable(s, f) : this._reassembleUnreliable(s, f);
        if (msg) this._deliver(s, f, msg, reliable);
        return;
      }
      case K_CLOSE:
        this._closedByPeer(s, f.reason, f.debug);
        return;
      case K_PING:
        if (s.up && !s.ended) s.unrel.send(pingFrame(K_PONG, f.v));
        return;
      case K_PONG: {
        const sample = performance.now() * 1000 - Number(f.v); // µs
        if (sample < 0 || sample > 60e6) return;
        const ms = sample / 1000;
        s.rtt = s.rtt ? s.rtt - s.rtt / 8 + ms / 8 : ms;
      }
    }
  }

  _reassembleReliable(s, d) {
    const r = s.rrel;
    if (r.next === 0) {
      if (d.index !== 0) return this._fail(s, State.ProblemDetectedLocally, End.MiscInternalError, "WebRTC: reliable fragment out of sequence");
      if (d.count === 1) return d.payload.slice();
      r.parts = [d.payload.slice()];
      r.size = d.payload.length;
      r.num = d.num;
      r.next = 1;
      return null;
    }
    if (d.num !== r.num || d.index !== r.next) return this._fail(s, State.ProblemDetectedLocally, End.MiscInternalError, "WebRTC: reliable fragment out of sequence");
    r.parts.push(d.payload.slice());
    r.size += d.payload.length;
    if (++r.next < d.count) return null;
    const msg = concat(r.parts, r.size);
    r.parts = null;
    r.next = 0;
    return msg;
  }

  _reassembleUnreliable(s, d) {
    if (d.count === 1) return d.payload.slice();
    let at = s.partial.findIndex((p) => p.num === d.num);
    if (at < 0) {
      if (s.partial.length >= MAX_PARTIAL) s.partial.shift();
      s.partial.push({ num: d.num, count: d.count, got: 0, size: 0, parts: new Array(d.count) });
      at = s.partial.length - 1;
    }
    const p = s.partial[at];
    if (p.count !== d.count || p.parts[d.index]) {
      s.partial.splice(at, 1);
      return null;
    }
    p.parts[d.index] = d.payload.slice();
    p.got++;
    p.size += d.payload.length;
    if (p.got < p.count) return null;
    s.partial.splice(at, 1);
    return concat(p.parts, p.size);
  }

  _chan(ch) {
    let q = this.channels.get(ch);
    if (!q) {
      q = { msgs: [], waiters: [] };
      this.channels.set(ch, q);
    }
    return q;
  }

  _deliver(s, d, data, reliable) {
    s.lastUsed = performance.now();
    const q = this._chan(d.channel);
    if (s.unread >= RECV_QUEUE) {
      if (reliable) this._fail(s, State.ProblemDetectedLocally, End.MiscGeneric, "receive queue full (the application does not read)");
      else this.stats.framesDropped++;
      return;
    }
    s.open.add(d.channel);
    s.unread++;
    const m = new Message(s.identity, d.channel, data, d.flags & FLAG_RELIABLE ? SEND_RELIABLE : SEND_UNRELIABLE, d.num);
    m._s = s;
    q.msgs.push(m);
    for (const w of q.waiters.splice(0)) w();
  }

  // receive returns an async iterator of the messages arriving on
  // channel (from every peer), in arrival order; it ends when the Peer
  // closes.
  async *receive(channel = 0) {
    const q = this._chan(channel);
    for (;;) {
      if (q.msgs.length) {
        const m = q.msgs.shift();
        m._s.unread--;
        yield m;
        continue;
      }
      if (this.closed) return;
      await new Promise((res) => q.waiters.push(res));
    }
  }

  // receiveMessagesOnChannel returns up to max messages waiting on
  // channel, without waiting.
  receiveMessagesOnChannel(channel, max = 32) {
    const out = this._chan(channel).msgs.splice(0, max);
    for (const m of out) m._s.unread--;
    return out;
  }

  // acceptSessionWithUser accepts a pending session request; false if
  // there is no session with identity.
  acceptSessionWithUser(identity) {
    const s = this.sessions.get(identity);
    if (!s || s.failed) return false;
    this._accept(s);
    return true;
  }

  // closeSessionWithUser closes the session with identity; the peer sees
  // reason (default 1001, "Session closed") and debug. False if there was
  // none.
  closeSessionWithUser(identity, reason = End.SessionClosed, debug = "Session closed") {
    const s = this.sessions.get(identity);
    if (!s) return false;
    this._free(s, reason, debug);
    return true;
  }

  // closeChannelWithUser drops channel's unread messages from identity;
  // closing the last channel in use closes the session.
  closeChannelWithUser(identity, channel) {
    const s = this.sessions.get(identity);
    if (!s) return false;
    this._dropChannel(identity, channel);
    s.open.delete(channel);
    if (s.open.size === 0) this._free(s, End.SessionClosed, "Session closed");
    return true;
  }

  _dropChannel(identity, ch) {
    const q = this.channels.get(ch);
    if (q) q.msgs = q.msgs.filter((m) => m.identity !== identity || (m._s.unread--, false));
  }

  // getSessionConnectionInfo describes the session with identity:
  // {identity, state, endReason, endDebug, relayed, route ("direct" or
  // "relayed"), local, remote (candidate type and address), ping (ms, -1
  // until measured), description}; state is State.None without one.
  getSessionConnectionInfo(identity) {
    const s = this.sessions.get(identity);
    if (!s) return { identity, state: State.None, endReason: 0, endDebug: "", ping: -1, route: "", description: "" };
    if (s.failed) return { ...s.info };
    const r = s.route;
    return {
      identity,
      state: s.state,
      endReason: 0,
      endDebug: "",
      relayed: r ? r.relayed : false,
      route: r ? (r.relayed ? "relayed" : "direct") : "",
      local: r ? r.local : "",
      remote: r ? r.remote : "",
      ping: s.rtt ? s.rtt : -1,
      description: r ? `WebRTC ${r.relayed ? "relay" : "direct"} ${r.local} <-> ${r.remote}` : `WebRTC session with ${identity} (connecting)`,
    };
  }

  _closedByPeer(s, reason, debug) {
    if (s.ended || this.sessions.get(s.identity) !== s) return;
    s.closeFrame = true;
    if (!s.accepted || reason === End.SessionClosed || reason === End.IdleTimeout) {
      const info = { ...this.getSessionConnectionInfo(s.identity), state: State.ClosedByPeer, endReason: reason, endDebug: debug };
      const accepted = s.accepted;
      this._drop(s);
      this._end(s, 0, "");
      if (accepted) this.dispatchEvent(new CustomEvent("sessionclosed", { detail: { identity: s.identity, info } }));
      return;
    }
    this._fail(s, State.ClosedByPeer, reason, debug);
  }

  _lost(s, why) {
    if (s.ended || s.closeFrame) return;
    this._fail(s, State.ProblemDetectedLocally, End.MiscTimeout, "WebRTC: " + why);
  }

  _fail(s, state, reason, debug) {
    if (s.ended || s.failed || this.sessions.get(s.identity) !== s) return null;
    s.info = { ...this.getSessionConnectionInfo(s.identity), state, endReason: reason, endDebug: debug };
    s.failed = true;
    s.state = state;
    if (!s.accepted) {
      this._drop(s);
      this._end(s, 0, "");
      return null;
    }
    this._end(s, state === State.ProblemDetectedLocally ? reason : 0, debug);
    this.dispatchEvent(new CustomEvent("sessionfailed", { detail: { identity: s.identity, info: s.info } }));
    return null;
  }

  _free(s, reason, debug) {
    this._end(s, s.failed ? 0 : reason, debug);
    this._drop(s);
  }

  _drop(s) {
    if (this.sessions.get(s.identity) === s) this.sessions.delete(s.identity);
    for (const ch of s.open) this._dropChannel(s.identity, ch);
  }

  _end(s, reason, debug) {
    if (s.ended) return;
    s.ended = true;
    const up = s.up;
    s.up = false;
    if (reason && !up && (!s.offerer || s.localBlob)) this._sendSignal(s.identity, { k: "bye", s: s.sid, r: reason, d: debug });
    const pc = s.pc;
    if (!pc) return;
    if (up && reason) {
      try {
        s.rel.send(closeFrame(reason, debug));
      } catch {}
      const t0 = performance.now();
      const wait = () => {
        if (s.rel.bufferedAmount > 0 && performance.now() - t0 < 1000) setTimeout(wait, 5);
        else setTimeout(() => pc.close(), 20);
      };
      wait();
      return;
    }
    pc.close();
  }

  _tick() {
    const now = performance.now();
    for (const s of [...this.sessions.values()]) {
      if (s.failed) continue;
      if (s.state === State.Connecting && !s.accepted) {
        if (now - s.offerSeen > OFFER_STALE) {
          this._drop(s);
          this._end(s, 0, "");
        } else if (now >= s.requestAt) this._request(s);
      } else if (s.state === State.Connecting) {
        if (s.connectBy && now > s.connectBy) this._fail(s, State.ProblemDetectedLocally, End.MiscP2PNATFirewall, "WebRTC: no connection (ICE found no path, or the peer did not answer)");
        else if (s.offerer && !s.answered && s.localBlob && now - s.offerSent >= OFFER_REPEAT) {
          s.offerSent = now;
          this._sendSignal(s.identity, s.localBlob);
        }
      } else if (s.state === State.Connected && s.up && now >= s.pingNext) {
        s.pingNext = now + PING_EVERY;
        try {
          s.unrel.send(pingFrame(K_PING, BigInt(Math.round(now * 1000))));
        } catch {}
        this._readRoute(s);
      }
    }
  }
}

// proof is what the authenticated protocol signs: a domain tag, the
// identity and the server's challenge.
function proof(identity, challenge) {
  return concat([enc.encode("netmsg-signal/1\0"), enc.encode(identity), new Uint8Array([0]), challenge], 16 + identity.length + 1 + challenge.length);
}

// sign signs msg with an Ed25519 key: a CryptoKey, or a 32-byte seed
// (bytes or hex), imported as PKCS #8.
async function sign(key, msg) {
  if (!(key instanceof CryptoKey)) {
    const seed = typeof key === "string" ? unhex(key) : key;
    if (!seed || seed.length !== 32) throw new Error("netmsg: key must be a 32-byte Ed25519 seed or a CryptoKey");
    const der = concat([unhex("302e020100300506032b657004220420"), seed], 48);
    key = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
  }
  return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, msg));
}
