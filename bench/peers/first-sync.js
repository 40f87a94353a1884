// The peer of the sync benchmark: a browser-style database pulling the same rows from its own
// server. Starts pouchdb-server in memory on 127.0.0.1, loads the rows (one document per row,
// the same fields), then times a fresh PouchDB (LevelDB files in a temporary folder, as the
// device keeps a SQLite file) replicating them from the server, and prints one line:
//
//   peer first sync: <docs> docs in <seconds> s, <docs/s> docs/s (batch_size <n>)
//
// Usage: node first-sync.js [rows.ndjson]
//   rows.ndjson  one JSON object a line, each a document with `_id` (the sync benchmark writes
//                the rows its server holds); without it, FURROW_BENCH_ROWS households (100000)
//                are made the way the sync benchmark seeds its server.
// FURROW_PEER_BATCH sets the replication's batch_size (1000, the device's pull page).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const PouchDB = require('pouchdb-node');

const BATCH = Number(process.env.FURROW_PEER_BATCH || 1000);
const LOAD_CHUNK = 5000;

/** The rows: read from the benchmark's file, or made as the benchmark seeds its server. */
async function rows(file) {
  if (file) {
    const docs = [];
    const lines = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.trim()) docs.push(JSON.parse(line));
    }
    return docs;
  }
  const count = Number(process.env.FURROW_BENCH_ROWS || 100000);
  const docs = [];
  for (let index = 0; index < count; index++) {
    const doc = {
      _id: `h${String(index).padStart(8, '0')}`,
      scope_id: '530102001001',
      village_id: 'village-530102001001',
      head_name: `户主${index}`,
      attribute: 'general',
      poverty_status: 'not_exited',
      group_name: `${(index % 9) + 1}组`,
    };
    if (index % 10 === 3) doc.notes = `走访后补记 ${index}`;
    docs.push(doc);
  }
  return docs;
}

/** A free port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForServer(url, child) {
  const until = Date.now() + 60000;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`pouchdb-server exited with ${child.exitCode}`);
    try {
      const answer = await fetch(url);
      if (answer.ok) return;
    } catch (_) {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`pouchdb-server did not answer at ${url} within a minute`);
}

async function main() {
  const docs = await rows(process.argv[2]);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'furrow-peer-'));
  const port = await freePort();
  const bin = require.resolve('pouchdb-server/bin/pouchdb-server');
  // Its config file and log go to the temporary folder, not into the repository.
  const child = spawn(process.execPath, [bin, '--in-memory', '--no-stdout-logs', '-o', '127.0.0.1', '-p', String(port), '-c', path.join(work, 'config.json')], {
    cwd: work,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForServer(`${base}/`, child);
    const remote = new PouchDB(`${base}/households`);
    const loadStarted = Date.now();
    for (let start = 0; start < docs.length; start += LOAD_CHUNK) {
      const results = await remote.bulkDocs(docs.slice(start, start + LOAD_CHUNK));
      const failed = results.filter((result) => result.error);
      if (failed.length) throw new Error(`the server refused ${failed.length} documents: ${JSON.stringify(failed[0])}`);
    }
    const info = await remote.info();
    if (info.doc_count !== docs.length) throw new Error(`the server holds ${info.doc_count} documents, not ${docs.length}`);
    console.log(`peer server loaded ${docs.length} documents in ${((Date.now() - loadStarted) / 1000).toFixed(1)} s`);

    const local = new PouchDB(path.join(work, 'device'));
    const started = process.hrtime.bigint();
    const result = await local.replicate.from(remote, { batch_size: BATCH, batches_limit: 10 });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (!result.ok || result.docs_written !== docs.length) {
      throw new Error(`the replication wrote ${result.docs_written} of ${docs.length} documents (${JSON.stringify(result.errors)})`);
    }
    const held = await local.info();
    if (held.doc_count !== docs.length) throw new Error(`the peer holds ${held.doc_count} documents, not ${docs.length}`);
    // A sample read back, field by field, so a replication that wrote empty documents fails.
    for (let index = 0; index < docs.length; index += 997) {
      const doc = await local.get(docs[index]._id);
      for (const [field, value] of Object.entries(docs[index])) {
        if (field !== '_id' && doc[field] !== value) throw new Error(`${docs[index]._id}.${field} is ${doc[field]}, not ${value}`);
      }
    }
    console.log(
      `peer first sync: ${docs.length} docs in ${seconds.toFixed(2)} s, ${Math.round(docs.length / seconds)} docs/s (batch_size ${BATCH})`,
    );
    await local.close();
  } finally {
    child.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`peer benchmark failed: ${error.stack || error}`);
  process.exit(1);
});
