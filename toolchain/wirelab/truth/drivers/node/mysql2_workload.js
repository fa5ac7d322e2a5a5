// mysql2 workload for the wirelab driver matrix. argv[2]: JSON connection
// parameters {host, port, user, password, database}. Prints {"rows": n}.
'use strict';
const mysql = require('mysql2/promise');

async function main() {
  const params = JSON.parse(process.argv[2]);
  const conn = await mysql.createConnection({ ...params, multipleStatements: true });
  let rows = 0;
  // query(): text protocol, client-side placeholders
  const [some] = await conn.query('SELECT id FROM items WHERE id <= ?', [10]);
  rows += some.length;
  // execute(): COM_STMT_PREPARE once (cached), COM_STMT_EXECUTE each time
  for (let i = 1; i <= 5; i++) {
    const [r] = await conn.execute('SELECT v FROM items WHERE id = ?', [i]);
    rows += r.length;
  }
  await conn.execute('INSERT INTO sink VALUES (?, ?)', [1, 'a']);
  // several statements in one COM_QUERY
  const [results] = await conn.query("SELECT 1; SELECT 2; INSERT INTO sink VALUES (2, 'b'); " +
                                     "UPDATE sink SET v = 'c' WHERE id = 2");
  for (const r of results) if (Array.isArray(r)) rows += r.length;
  await conn.beginTransaction();
  await conn.query('DELETE FROM sink WHERE id = 1');
  await conn.rollback();
  await conn.beginTransaction();
  await conn.query('UPDATE items SET v = ? WHERE id = ?', ['u', 3]);
  await conn.commit();
  await conn.end();
  console.log(JSON.stringify({ rows }));
}

main().catch((err) => { console.error(err); process.exit(1); });
