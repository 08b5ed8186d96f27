// The rules of docs/protocol.md, in JavaScript, with nothing taken from the Python code:
// DSSE signing and verification, the records digest, signed notes, cosignatures,
// RFC 6962 inclusion proofs, status details and receipts.
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import protobuf from "protobufjs";
import { parse as parseToml } from "smol-toml";

const here = path.dirname(fileURLToPath(import.meta.url));
export const PROTO = path.resolve(here, "../../../proto/comity/v1/comity.proto");

export const PAYLOAD_QUERY = "application/vnd.comity.query+protobuf";
export const PAYLOAD_NODE_STATEMENT = "application/vnd.comity.node-statement+protobuf";
export const PAYLOAD_NODE_DECISION = "application/vnd.comity.node-decision+protobuf";
export const PAYLOAD_ORDER = "application/vnd.comity.legal-order+protobuf";

// google.rpc.Status, as googleapis/google/rpc/status.proto defines it (Any spelled out: the
// same wire form as google.protobuf.Any).
const STATUS_PROTO = `
syntax = "proto3";
package google.rpc;
message PackedAny { string type_url = 1; bytes value = 2; }
message Status { int32 code = 1; string message = 2; repeated PackedAny details = 3; }
`;

export function loadTypes() {
  const root = new protobuf.Root();
  root.loadSync(PROTO, { keepCase: true });
  protobuf.parse(STATUS_PROTO, root, { keepCase: true });
  root.resolveAll();
  const t = (name) => root.lookupType(name);
  return {
    Query: t("comity.v1.Query"),
    Envelope: t("comity.v1.Envelope"),
    NodeStatement: t("comity.v1.NodeStatement"),
    NodeDecision: t("comity.v1.NodeDecision"),
    PolicyDenial: t("comity.v1.PolicyDenial"),
    Receipt: t("comity.v1.Receipt"),
    Status: t("google.rpc.Status"),
  };
}

export const sha256 = (...parts) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};

// ------------------------------------------------------------------ keys

const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

// "ed25519:<base64 of the 32-byte public key>", as the federation file writes keys.
export function publicKey(text) {
  const [scheme, b64] = text.split(":");
  if (scheme !== "ed25519") throw new Error(`not an Ed25519 key: ${text}`);
  const raw = Buffer.from(b64, "base64");
  if (raw.length !== 32) throw new Error("an Ed25519 public key has 32 bytes");
  return { raw, key: createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: "der", type: "spki" }) };
}

export const privateKey = (pemFile) => createPrivateKey(readFileSync(pemFile));

// ------------------------------------------------------------------ DSSE

export function pae(payloadType, payload) {
  const t = Buffer.from(payloadType, "utf8");
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${t.length} `), t, Buffer.from(` ${payload.length} `), payload,
  ]);
}

export function signEnvelope(payloadType, payload, keyid, key) {
  const sig = sign(null, pae(payloadType, payload), key);
  return { payload_type: payloadType, payload, signatures: [{ keyid, sig }] };
}

// Checks the signature over the exact bytes before anything parses them; returns the payload.
export function verifyEnvelope(envelope, payloadType, keyid, publicKeys) {
  if (envelope.payload_type !== payloadType) throw new Error(`payload type ${envelope.payload_type}, expected ${payloadType}`);
  const message = pae(envelope.payload_type, Buffer.from(envelope.payload));
  for (const s of envelope.signatures || []) {
    if (s.keyid !== keyid) continue;
    for (const k of publicKeys) if (verify(null, message, k.key, Buffer.from(s.sig))) return Buffer.from(envelope.payload);
  }
  throw new Error(`no signature by ${keyid} verifies over the ${payloadType} payload`);
}

// ------------------------------------------------------------------ the records digest

function varint(n) {
  let v = BigInt.asUintN(64, BigInt(n));
  const out = [];
  while (v >= 0x80n) { out.push(Number((v & 0x7fn) | 0x80n)); v >>= 7n; }
  out.push(Number(v));
  return Buffer.from(out);
}
const tag = (field, wire) => varint((field << 3) | wire);
const lenField = (field, bytes) => Buffer.concat([tag(field, 2), varint(bytes.length), bytes]);
const strField = (field, s) => (s ? lenField(field, Buffer.from(s, "utf8")) : Buffer.alloc(0));

const CATEGORY = { DATA_CATEGORY_UNSPECIFIED: 0, SUBSCRIBER: 1, TRAFFIC: 2, CONTENT: 3 };

// A Record's canonical bytes (docs/protocol.md, "The records digest"): fields in number order,
// proto3 defaults left out, map entries sorted by key, each entry with both key and value.
export function canonicalRecord(r) {
  const parts = [strField(1, r.record_id), strField(2, r.record_type)];
  const category = typeof r.category === "string" ? CATEGORY[r.category] : r.category || 0;
  if (category) parts.push(tag(3, 0), varint(category));
  if (r.observed_at) {
    const seconds = BigInt(r.observed_at.seconds || 0);
    const nanos = r.observed_at.nanos || 0;
    const ts = [];
    if (seconds !== 0n) ts.push(tag(1, 0), varint(seconds));
    if (nanos !== 0) ts.push(tag(2, 0), varint(nanos));
    parts.push(lenField(4, Buffer.concat(ts)));
  }
  const keys = Object.keys(r.fields || {}).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const k of keys) {
    const entry = Buffer.concat([lenField(1, Buffer.from(k, "utf8")), lenField(2, Buffer.from(r.fields[k], "utf8"))]);
    parts.push(lenField(5, entry));
  }
  return Buffer.concat(parts);
}

export function recordsDigest(records) {
  const h = createHash("sha256");
  h.update("comity/records/v1\n");
  for (const r of records) {
    const bytes = canonicalRecord(r);
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(bytes.length));
    h.update(len);
    h.update(bytes);
  }
  return h.digest();
}

// ------------------------------------------------------------------ the federation file

export function readFederation(file) {
  const doc = parseToml(readFileSync(file, "utf8"));
  const log = doc.gateway.log;
  const logKeys = log.keys
    ? log.keys.map((k) => ({ ...publicKey(k.key), fromSize: k.from_size ?? 0, untilSize: k.until_size ?? Infinity }))
    : [{ ...publicKey(log.key), fromSize: 0, untilSize: Infinity }];
  const nodes = {};
  for (const member of doc.members) {
    for (const node of member.nodes || []) {
      const dated = (single, history) => (node[history]
        ? node[history].map((k) => ({ ...publicKey(k.key), from: k.valid_from ? new Date(k.valid_from) : null, until: k.valid_until ? new Date(k.valid_until) : null }))
        : [{ ...publicKey(node[single]), from: null, until: null }]);
      nodes[node.id] = { responseKeys: dated("response_key", "response_keys"), witnessKeys: dated("witness_key", "witness_keys") };
    }
  }
  return { origin: log.origin, logKeys, nodes };
}

const validAt = (keys, when) => keys.filter((k) => (!k.from || k.from <= when) && (!k.until || when < k.until));

// ------------------------------------------------------------------ status details

// The PolicyDenial (or Receipt) in the grpc-status-details-bin trailer of a failed call.
export function statusDetails(types, error) {
  const [bin] = error.metadata ? error.metadata.get("grpc-status-details-bin") : [];
  if (!bin) return { status: null, denial: null, receipt: null };
  const status = types.Status.decode(bin);
  let denial = null;
  let receipt = null;
  for (const any of status.details) {
    if (any.type_url === "type.googleapis.com/comity.v1.PolicyDenial") denial = types.PolicyDenial.toObject(types.PolicyDenial.decode(any.value), { longs: String, enums: String });
    if (any.type_url === "type.googleapis.com/comity.v1.Receipt") receipt = types.Receipt.toObject(types.Receipt.decode(any.value), { longs: String, enums: String });
  }
  if (denial && denial.receipt) receipt = denial.receipt;
  return { status, denial, receipt };
}

// ------------------------------------------------------------------ signed notes, checkpoints

function noteKeyId(name, alg, raw) {
  return sha256(Buffer.from(name + "\n"), Buffer.from([alg]), raw).subarray(0, 4);
}

function splitNote(note) {
  const text = Buffer.from(note).toString("utf8");
  const cut = text.indexOf("\n\n");
  if (cut < 0) throw new Error("a signed note needs a blank line before its signatures");
  const body = text.slice(0, cut + 1);
  const lines = text.slice(cut + 2).split("\n").filter((l) => l);
  const signatures = lines.map((line) => {
    if (!line.startsWith("\u2014 ")) throw new Error(`not a signature line: ${line}`);
    const [name, b64] = line.slice(2).split(" ");
    const blob = Buffer.from(b64, "base64");
    return { name, keyId: blob.subarray(0, 4), rest: blob.subarray(4) };
  });
  return { body, signatures };
}

// The checkpoint of size n must be signed by the log key the federation lists for n.
export function verifyCheckpoint(signedNote, federation) {
  const { body, signatures } = splitNote(signedNote);
  const [origin, sizeText, rootB64] = body.split("\n");
  if (origin !== federation.origin) throw new Error(`checkpoint of log ${origin}, expected ${federation.origin}`);
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) throw new Error("bad checkpoint size");
  const size = Number(sizeText);
  const root = Buffer.from(rootB64, "base64");
  const keys = federation.logKeys.filter((k) => k.fromSize <= size && size < k.untilSize);
  const ok = signatures.some((s) => s.name === origin && keys.some((k) =>
    s.keyId.equals(noteKeyId(origin, 0x01, k.raw)) && verify(null, Buffer.from(body), k.key, s.rest)));
  if (!ok) throw new Error("the checkpoint is not signed by the log's key for its size");
  return { origin, size, root, body };
}

// Timestamped Ed25519 cosignatures (C2SP tlog-cosignature), one line per witness.
export function verifyCosignatures(lines, checkpoint, federation) {
  const witnesses = new Set();
  for (const line of lines) {
    const [name, b64] = line.trim().slice(2).split(" ");
    const blob = Buffer.from(b64, "base64");
    const time = blob.readBigUInt64BE(4);
    const node = federation.nodes[name];
    if (!node) throw new Error(`cosignature by ${name}, not a witness of the federation`);
    const message = Buffer.from(`cosignature/v1\ntime ${time}\n${checkpoint.body}`);
    const keys = validAt(node.witnessKeys, new Date(Number(time) * 1000));
    const ok = keys.some((k) => blob.subarray(0, 4).equals(noteKeyId(name, 0x04, k.raw)) && verify(null, message, k.key, blob.subarray(12)));
    if (!ok) throw new Error(`the cosignature of ${name} does not verify`);
    witnesses.add(name);
  }
  return [...witnesses].sort();
}

// ------------------------------------------------------------------ RFC 6962 / RFC 9162

export const leafHash = (entry) => sha256(Buffer.from([0]), entry);
const nodeHash = (l, r) => sha256(Buffer.from([1]), l, r);

// RFC 9162 section 2.1.3.2.
export function verifyInclusion(leaf, index, size, path, root) {
  if (index >= size) throw new Error("leaf index beyond the tree");
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  let r = leaf;
  for (const p of path) {
    if (sn === 0n) throw new Error("inclusion proof too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !r.equals(root)) throw new Error("inclusion proof does not lead to the checkpoint's root");
}

// ------------------------------------------------------------------ receipts

// Checks a receipt for query (id, digest): the checkpoint, every entry's inclusion and binding,
// and, when the query was answered, the node's statement as the disclosure logged it.
export function verifyReceipt(types, receipt, { queryId, queryDigest, federation }) {
  const checkpoint = verifyCheckpoint(receipt.checkpoint.signed_note, federation);
  const events = [];
  for (const e of receipt.entries) {
    const entry = Buffer.from(e.entry);
    if (Number(e.inclusion.tree_size) !== checkpoint.size) throw new Error("an entry is proved against another tree size");
    verifyInclusion(leafHash(entry), Number(e.inclusion.leaf_index), checkpoint.size, e.inclusion.hashes.map((h) => Buffer.from(h)), checkpoint.root);
    const event = JSON.parse(entry.toString("utf8"));
    if (event.query_id !== queryId) throw new Error(`entry ${event.kind} names query ${event.query_id}`);
    if (event.query_digest !== undefined && event.query_digest !== queryDigest.toString("hex")) throw new Error(`entry ${event.kind} names another query digest`);
    events.push(event);
  }
  const kinds = events.map((e) => e.kind);
  if (!kinds.includes("decision") && !kinds.includes("refused")) throw new Error("the receipt has no decision entry");
  let statement = null;
  const disclosed = events.find((e) => e.kind === "disclosed");
  if (disclosed) {
    const logged = types.Envelope.decode(Buffer.from(disclosed.node_signature, "hex"));
    const sent = receipt.node_statement;
    if (!Buffer.from(logged.payload).equals(Buffer.from(sent.payload))) throw new Error("the receipt's node statement is not the one the disclosure logged");
    statement = openStatement(types, sent, disclosed.node, federation);
    if (statement.query_id !== queryId || !Buffer.from(statement.query_digest).equals(queryDigest)) throw new Error("the node's statement answers another query");
    if (statement.hit !== disclosed.hit || statement.record_count !== disclosed.record_count
        || Buffer.from(statement.records_digest).toString("hex") !== disclosed.records_digest) {
      throw new Error("the node's statement and the logged disclosure disagree");
    }
    // A disclosure proves an answer only with the node's signed decision to give it, logged with
    // the disclosed statement (RECEIPT_NODE_DECISION_MISSING, RECEIPT_NODE_STATEMENT).
    const allowances = events.filter((e) => e.kind === "node_decision");
    if (allowances.length !== 1) throw new Error("the receipt holds no entry of the node's signed decision to answer it");
    const allowance = allowances[0];
    if (allowance.decision !== "ALLOW") throw new Error("the receipt holds a disclosure the node refused");
    if (allowance.node_statement !== disclosed.node_signature) throw new Error("the node's decision was logged with another statement than the disclosed one");
    const decision = openDecision(types, types.Envelope.decode(Buffer.from(allowance.node_decision, "hex")), allowance.node, federation);
    if (decision.query_id !== queryId || !Buffer.from(decision.query_digest).equals(queryDigest) || decision.decision !== allowance.decision) {
      throw new Error("the node's signed decision is not the one logged for this query");
    }
  }
  const witnesses = verifyCosignatures(receipt.cosignatures || [], checkpoint, federation);
  return { checkpoint, kinds, statement, witnesses };
}

export function openDecision(types, envelope, nodeId, federation) {
  const node = federation.nodes[nodeId];
  if (!node) throw new Error(`node ${nodeId} is not in the federation`);
  const payload = verifyEnvelope(envelope, PAYLOAD_NODE_DECISION, nodeId, node.responseKeys);
  const decision = types.NodeDecision.decode(payload);
  if (!decision.decided_at) throw new Error("the node's decision is undated");
  verifyEnvelope(envelope, PAYLOAD_NODE_DECISION, nodeId, validAt(node.responseKeys, new Date(Number(decision.decided_at.seconds) * 1000)));
  if (decision.node_id !== nodeId) throw new Error(`the node's decision names node ${decision.node_id}`);
  return decision;
}

export function openStatement(types, envelope, nodeId, federation) {
  const node = federation.nodes[nodeId];
  if (!node) throw new Error(`node ${nodeId} is not in the federation`);
  // The signature over the exact bytes first, then parse, then: by a key valid when it answered.
  const payload = verifyEnvelope(envelope, PAYLOAD_NODE_STATEMENT, nodeId, node.responseKeys);
  const statement = types.NodeStatement.toObject(types.NodeStatement.decode(payload), { longs: String, defaults: true });
  const answered = new Date(Number(statement.answered_at.seconds) * 1000);
  verifyEnvelope(envelope, PAYLOAD_NODE_STATEMENT, nodeId, validAt(node.responseKeys, answered));
  if (statement.node_id !== nodeId) throw new Error(`the statement names node ${statement.node_id}`);
  return statement;
}
