// node-postgres workload for the wirelab driver matrix. argv[2]: JSON connection
// parameters {host, port, user, password, database}. Prints {"rows": n}: the rows
// this program received.
'use strict';
const { Client } = require('pg');
const Cursor = require('pg-cursor');
const QueryStream = require('pg-query-stream');

async function readAll(cursor, batch) {
  let n = 0;
  for (;;) {
    const rows = await cursor.read(batch);
    if (rows.length === 0) return n;
    n += rows.length;
  }
}

async function main() {
  const params = JSON.parse(process.argv[2]);
  const client = new Client({ ...params, ssl: false });
  await client.connect();
  let rows = 0;
  // a named statement: parsed once, then Bind/Execute by name
  for (let i = 1; i <= 6; i++) {
    const r = await client.query({ name: 'by_id', text: 'SELECT v FROM items WHERE id = $1',
                                   values: [i] });
    rows += r.rows.length;
  }
  await client.query('INSERT INTO sink VALUES ($1, $2)', [1, 'n']);
  // pg-cursor: Executes with a row limit (PortalSuspended) until the end
  const all = client.query(new Cursor('SELECT id FROM items'));
  rows += await readAll(all, 50);
  await all.close();
  // ... and one closed before its end
  const early = client.query(new Cursor('SELECT id FROM items ORDER BY id'));
  rows += (await early.read(30)).length;
  await early.close();
  // pg-query-stream: a cursor underneath, batches of 40
  const stream = client.query(new QueryStream('SELECT id FROM items WHERE id <= $1', [123],
                                              { batchSize: 40 }));
  for await (const _row of stream) rows += 1;
  await client.query('BEGIN');
  await client.query('UPDATE items SET v = $1 WHERE id = $2', ['x', 1]);
  await client.query('COMMIT');
  await client.query('BEGIN');
  await client.query('DELETE FROM sink WHERE id = 1');
  await client.query('ROLLBACK');
  await client.end();
  console.log(JSON.stringify({ rows }));
}

main().catch((err) => { console.error(err); process.exit(1); });
