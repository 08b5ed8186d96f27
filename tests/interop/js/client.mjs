// A Comity client in JavaScript, written from docs/protocol.md: health and reflection, a signed
// HIT_CHECK then FETCH with every answer verified (a streamed one batch by batch), and refusals read
// from the status details.
// Usage: node client.mjs CONFIG.json  (prints one JSON object with what it found; exit 1 on error)
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

import {
  PAYLOAD_NODE_DECISION, PAYLOAD_QUERY, PROTO, leafHash, loadTypes, openStatement, privateKey,
  readFederation, recordsDigest, sha256, signEnvelope, statusDetails, verifyCheckpoint,
  verifyCosignatures, verifyEnvelope, verifyInclusion, verifyReceipt,
} from "./protocol.mjs";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const types = loadTypes();
const federation = readFederation(config.federation);
const credentials = grpc.credentials.createSsl(readFileSync(config.ca));
const token = readFileSync(config.token_file, "utf8").trim();
const signingKey = privateKey(config.key);

const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const comity = grpc.loadPackageDefinition(definition).comity.v1;
const gateway = new comity.Gateway(config.gateway, credentials);
const auditLog = new comity.AuditLog(config.gateway, credentials);

function bearer() {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

const deadline = () => new Date(Date.now() + 30_000);

// ------------------------------------------------------------------ health and reflection

const HEALTH = protobuf.parse(`syntax = "proto3"; package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse { enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; } ServingStatus status = 1; }`, { keepCase: true }).root;
const REFLECTION = protobuf.parse(`syntax = "proto3"; package grpc.reflection.v1;
message ServerReflectionRequest { string host = 1; oneof message_request { string file_containing_symbol = 4; string list_services = 7; } }
message ServiceResponse { string name = 1; }
message ListServiceResponse { repeated ServiceResponse service = 1; }
message ErrorResponse { int32 error_code = 1; string error_message = 2; }
message FileDescriptorResponse { repeated bytes file_descriptor_proto = 1; }
message ServerReflectionResponse { string valid_host = 1; ServerReflectionRequest original_request = 2;
  oneof message_response { FileDescriptorResponse file_descriptor_response = 4; ListServiceResponse list_services_response = 6; ErrorResponse error_response = 7; } }`, { keepCase: true }).root;

const codec = (type) => ({ serialize: (o) => Buffer.from(type.encode(type.fromObject(o)).finish()), deserialize: (b) => type.toObject(type.decode(b), { enums: String }) });

function health(service) {
  const client = new grpc.Client(config.gateway, credentials);
  const req = codec(HEALTH.lookupType("grpc.health.v1.HealthCheckRequest"));
  const res = codec(HEALTH.lookupType("grpc.health.v1.HealthCheckResponse"));
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest("/grpc.health.v1.Health/Check", req.serialize, res.deserialize, { service }, { deadline: deadline() },
      (err, answer) => { client.close(); return err ? reject(err) : resolve(answer.status); });
  });
}

function listServices() {
  const client = new grpc.Client(config.gateway, credentials);
  const req = codec(REFLECTION.lookupType("grpc.reflection.v1.ServerReflectionRequest"));
  const res = codec(REFLECTION.lookupType("grpc.reflection.v1.ServerReflectionResponse"));
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", req.serialize, res.deserialize, { deadline: deadline() });
    call.on("data", (answer) => { resolve(answer.list_services_response.service.map((s) => s.name)); call.end(); });
    call.on("error", (err) => reject(err));
    call.on("end", () => client.close());
    call.write({ list_services: "" });
  });
}

// ------------------------------------------------------------------ queries

const orderEnvelope = types.Envelope.toObject(types.Envelope.decode(readFileSync(config.order)));

function timestamp(date) {
  const ms = date.getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

function buildQuery({ kind, categories, hitReference = "", timeRange = config.time_range, issuedAt = new Date() }) {
  const query = {
    query_id: randomUUID(),
    issued_at: timestamp(issuedAt),
    requesting_agency: config.agency,
    investigator: config.investigator,
    target_node: config.node,
    kind,
    selectors: [config.selector],
    categories,
    time_range: { start: timestamp(new Date(timeRange[0])), end: timestamp(new Date(timeRange[1])) },
    case_reference: config.case_reference,
    justification: { facts: config.facts, link_to_offence: config.link },
    legal_order: orderEnvelope,
    hit_reference: hitReference,
  };
  const payload = Buffer.from(types.Query.encode(types.Query.fromObject(query)).finish());
  // The key id is the investigator's id; the query digest is SHA-256 over the payload bytes.
  const envelope = signEnvelope(PAYLOAD_QUERY, payload, config.investigator, signingKey);
  return { query, envelope, digest: sha256(payload) };
}

function submit(envelope) {
  return new Promise((resolve) => {
    gateway.Submit({ signed_query: envelope }, bearer(), { deadline: deadline() },
      (err, result) => resolve(err ? { err } : { result }));
  });
}

// A stream's summary comes first; each record batch is then checked against the digest the node
// signed for it (batch_digests) before any of its records is kept.
function submitStream(envelope) {
  return new Promise((resolve) => {
    const records = [];
    let summary = null;
    let signed = null;
    let batches = 0;
    let failed = null;
    const call = gateway.SubmitStream({ signed_query: envelope }, bearer(), { deadline: deadline() });
    call.on("data", (chunk) => {
      if (failed) return;
      try {
        if (summary === null) {
          if (chunk.part !== "summary" || chunk.summary.records.length) throw new Error("the stream did not start with its summary");
          summary = chunk.summary;
          signed = openStatement(types, summary.receipt.node_statement, summary.node_id, federation).batch_digests.map((d) => Buffer.from(d));
          return;
        }
        if (chunk.part !== "records") throw new Error("a second summary arrived");
        const batch = chunk.records.records;
        if (batches >= signed.length || !recordsDigest(batch).equals(signed[batches])) throw new Error(`record batch ${batches + 1} does not match its signed digest`);
        batches += 1;
        records.push(...batch);
      } catch (err) {
        failed = err;
        call.cancel();
      }
    });
    call.on("error", (err) => resolve({ err: failed ?? err }));
    call.on("end", () => {
      if (failed) resolve({ err: failed });
      else if (summary === null || batches !== signed.length) resolve({ err: new Error("the stream ended short of its signed batches") });
      else resolve({ records, summary, batches });
    });
  });
}

// Every check a client makes on an answer before it uses a record.
function verifyAnswer(built, result, records) {
  const { query, digest } = built;
  const receipt = verifyReceipt(types, result.receipt, { queryId: query.query_id, queryDigest: digest, federation });
  const statement = openStatement(types, result.receipt.node_statement, result.node_id, federation);
  if (statement.query_id !== query.query_id || !Buffer.from(statement.query_digest).equals(digest)) throw new Error("the statement answers another query");
  if (statement.hit !== result.hit || statement.hit_reference !== result.hit_reference) throw new Error("the statement and the answer disagree about the hit");
  if (statement.record_count !== records.length) throw new Error("the statement counts other records");
  const ours = recordsDigest(records);
  if (!ours.equals(Buffer.from(statement.records_digest))) throw new Error("the records digest differs from the node's statement");
  const decisionPayload = verifyEnvelope(result.node_decision, PAYLOAD_NODE_DECISION, result.node_id, federation.nodes[result.node_id].responseKeys);
  const decision = types.NodeDecision.decode(decisionPayload);
  if (decision.decision !== "ALLOW" || decision.query_id !== query.query_id) throw new Error("the node's decision does not allow this query");
  return {
    query_id: query.query_id,
    hit: result.hit,
    hit_reference: result.hit_reference,
    records: records.length,
    records_digest: ours.toString("hex"),
    use_restrictions: statement.use_restrictions.map((u) => u.code),
    entries: receipt.kinds,
    checkpoint_size: receipt.checkpoint.size,
    witnesses: receipt.witnesses,
  };
}

const unary = (client, method, request) => new Promise((resolve, reject) => {
  client[method](request, { deadline: deadline() }, (err, answer) => (err ? reject(err) : resolve(answer)));
});

// A fresh receipt's checkpoint awaits the witnesses; later, the newest quorum checkpoint and a new
// inclusion proof (AuditLog, open to any TLS client) show the same entries under a quorum.
async function refreshedReceipt(result) {
  const disclosure = result.receipt.entries.at(-1);
  const index = Number(disclosure.inclusion.leaf_index);
  for (let tries = 0; tries < 100; tries++) {
    const answer = await unary(auditLog, "GetCheckpoint", { tree_size: 0 });
    const checkpoint = verifyCheckpoint(answer.checkpoint.signed_note, federation);
    const witnesses = verifyCosignatures(answer.cosignatures, checkpoint, federation);
    if (checkpoint.size > index && witnesses.length >= 2) {
      const proof = await unary(auditLog, "GetInclusionProof", { leaf_hash: leafHash(Buffer.from(disclosure.entry)), tree_size: checkpoint.size });
      if (Number(proof.leaf_index) !== index) throw new Error("the log proves the entry at another index");
      verifyInclusion(leafHash(Buffer.from(disclosure.entry)), index, checkpoint.size, proof.hashes.map((h) => Buffer.from(h)), checkpoint.root);
      return { checkpoint_size: checkpoint.size, witnesses };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("no quorum checkpoint covered the entry");
}

function refusal(built, err) {
  const { status, denial, receipt } = statusDetails(types, err);
  const out = {
    code: grpc.status[err.code],
    message: err.details,
    status_message_matches: status !== null && status.message === err.details && status.code === err.code,
    violations: denial ? denial.violations.map((v) => ({ code: v.code, check: v.check })) : [],
  };
  if (receipt) {
    out.receipt_entries = verifyReceipt(types, receipt, { queryId: built.query.query_id, queryDigest: built.digest, federation }).kinds;
  }
  return out;
}

// The same answer altered in transit must fail verification, each in its own way.
function tamperings(built, result) {
  const copy = () => structuredClone(result);
  const fails = (fn) => { try { fn(); return false; } catch { return true; } };
  const record = copy();
  record.records[0].fields[Object.keys(record.records[0].fields)[0]] += "x";
  const dropped = copy();
  dropped.records.pop();
  const proof = copy();
  proof.receipt.entries[0].inclusion.hashes[0] = Buffer.alloc(32);
  const statement = copy();
  statement.receipt.node_statement.payload = Buffer.from(statement.receipt.node_statement.payload).fill(0, 0, 4);
  const checkpoint = copy();
  checkpoint.receipt.checkpoint.signed_note = Buffer.from(Buffer.from(checkpoint.receipt.checkpoint.signed_note).toString().replace(/\n(\d+)\n/, (_, n) => `\n${Number(n) + 1}\n`));
  // The receipt a gateway answering around the node would give: every other entry still proved.
  const unallowed = copy();
  unallowed.receipt.entries = unallowed.receipt.entries.filter((e) => JSON.parse(Buffer.from(e.entry).toString("utf8")).kind !== "node_decision");
  return {
    record: fails(() => verifyAnswer(built, record, record.records)),
    node_decision_missing: fails(() => verifyAnswer(built, unallowed, unallowed.records)),
    dropped_record: fails(() => verifyAnswer(built, dropped, dropped.records)),
    inclusion_proof: fails(() => verifyAnswer(built, proof, proof.records)),
    node_statement: fails(() => verifyAnswer(built, statement, statement.records)),
    checkpoint: fails(() => verifyAnswer(built, checkpoint, checkpoint.records)),
  };
}

async function main() {
  const out = {};
  out.health = await health("");
  out.health_gateway = await health("comity.v1.Gateway");
  out.reflection_v1 = await listServices();

  const hit = buildQuery({ kind: "HIT_CHECK", categories: ["SUBSCRIBER"] });
  const answered = await submit(hit.envelope);
  if (answered.err) throw new Error(`hit check refused: ${answered.err.details}`);
  out.hit_check = verifyAnswer(hit, answered.result, answered.result.records);

  const fetch = buildQuery({ kind: "FETCH", categories: ["SUBSCRIBER", "TRAFFIC"], hitReference: answered.result.hit_reference });
  const fetched = await submit(fetch.envelope);
  if (fetched.err) throw new Error(`fetch refused: ${fetched.err.details}`);
  out.fetch = verifyAnswer(fetch, fetched.result, fetched.result.records);

  const streamed = buildQuery({ kind: "FETCH", categories: ["SUBSCRIBER"], hitReference: answered.result.hit_reference });
  const stream = await submitStream(streamed.envelope);
  if (stream.err) throw new Error(`streamed fetch refused: ${stream.err.details ?? stream.err.message}`);
  out.stream = { ...verifyAnswer(streamed, stream.summary, stream.records), batches: stream.batches };
  out.refreshed = await refreshedReceipt(fetched.result);
  out.tampering_detected = tamperings(fetch, fetched.result);

  // A policy refusal: a time range longer than the data category allows.
  const wide = buildQuery({ kind: "HIT_CHECK", categories: ["SUBSCRIBER"], timeRange: ["2020-01-01T00:00:00Z", "2025-12-31T00:00:00Z"] });
  const r1 = await submit(wide.envelope);
  if (!r1.err) throw new Error("a six-year time range was allowed");
  out.policy_refusal = refusal(wide, r1.err);

  // A refusal before policy: the signature does not cover the bytes sent.
  const forged = buildQuery({ kind: "HIT_CHECK", categories: ["SUBSCRIBER"] });
  forged.envelope.payload = Buffer.concat([forged.envelope.payload, Buffer.from([0x78, 0x00])]);
  forged.digest = sha256(forged.envelope.payload); // the log names the bytes it received
  const r2 = await submit(forged.envelope);
  if (!r2.err) throw new Error("a tampered query was allowed");
  out.signature_refusal = refusal(forged, r2.err);

  // Issued ten minutes ago: outside the freshness window.
  const stale = buildQuery({ kind: "HIT_CHECK", categories: ["SUBSCRIBER"], issuedAt: new Date(Date.now() - 600_000) });
  const r3 = await submit(stale.envelope);
  if (!r3.err) throw new Error("a stale query was allowed");
  out.stale_refusal = refusal(stale, r3.err);

  gateway.close();
  auditLog.close();
  return out;
}

main().then(
  (out) => { process.stdout.write(`${JSON.stringify(out)}\n`); process.exit(0); },
  (err) => { process.stderr.write(`${err.stack || err}\n`); process.exit(1); },
);
