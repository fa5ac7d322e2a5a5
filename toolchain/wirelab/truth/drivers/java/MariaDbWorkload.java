// MariaDB Connector/J workload for the wirelab driver matrix.
// args: host port user password database. Prints {"rows": n}: rows received.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

public class MariaDbWorkload {
    static int drain(ResultSet rs) throws SQLException {
        int n = 0;
        while (rs.next()) n++;
        rs.close();
        return n;
    }

    static Connection connect(String[] a, String options) throws SQLException {
        String url = "jdbc:mariadb://" + a[0] + ":" + a[1] + "/" + a[4] + "?user=" + a[2]
            + "&password=" + a[3] + "&useSsl=false" + options;
        return DriverManager.getConnection(url);
    }

    static void insertBatch(Connection c, int first, int n) throws SQLException {
        try (PreparedStatement ins = c.prepareStatement("INSERT INTO sink VALUES (?, ?)")) {
            for (int i = 0; i < n; i++) {
                ins.setInt(1, first + i);
                ins.setString(2, "b");
                ins.addBatch();
            }
            ins.executeBatch();
        }
    }

    public static void main(String[] a) throws Exception {
        int rows = 0;
        // defaults: client-side prepared statements; a batch of 60 is pipelined
        // (every command written before the first answer is read)
        try (Connection c = connect(a, "")) {
            insertBatch(c, 1000, 60);
            try (Statement st = c.createStatement()) {
                rows += drain(st.executeQuery("SELECT id FROM items WHERE id <= 20"));
            }
        }
        // server-side prepared statements, a batch, commit and rollback
        try (Connection c = connect(a, "&useServerPrepStmts=true")) {
            try (PreparedStatement ps = c.prepareStatement("SELECT v FROM items WHERE id = ?")) {
                for (int i = 1; i <= 6; i++) {
                    ps.setInt(1, i);
                    rows += drain(ps.executeQuery());
                }
            }
            insertBatch(c, 2000, 20);
            c.setAutoCommit(false);
            try (PreparedStatement up = c.prepareStatement("UPDATE items SET v = ? WHERE id = ?")) {
                up.setString(1, "s");
                up.setInt(2, 1);
                up.executeUpdate();
            }
            c.commit();
            try (Statement st = c.createStatement()) {
                st.executeUpdate("DELETE FROM sink WHERE id = 2000");
            }
            c.rollback();
            c.setAutoCommit(true);
        }
        // rewriteBatchedStatements: INSERTs become one multi-row INSERT, UPDATEs one
        // multi-statement query
        try (Connection c = connect(a, "&rewriteBatchedStatements=true")) {
            insertBatch(c, 3000, 15);
            try (PreparedStatement up = c.prepareStatement("UPDATE sink SET v = ? WHERE id = ?")) {
                for (int i = 0; i < 10; i++) {
                    up.setString(1, "w");
                    up.setInt(2, 3000 + i);
                    up.addBatch();
                }
                up.executeBatch();
            }
        }
        System.out.println("{\"rows\": " + rows + "}");
    }
}
