// pgJDBC workload for the wirelab driver matrix.
// args: host port user password database. Prints {"rows": n}: rows received.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class PgJdbcWorkload {
    static int drain(ResultSet rs) throws SQLException {
        int n = 0;
        while (rs.next()) n++;
        rs.close();
        return n;
    }

    public static void main(String[] a) throws Exception {
        Properties p = new Properties();
        p.setProperty("user", a[2]);
        p.setProperty("password", a[3]);
        p.setProperty("sslmode", "disable");
        p.setProperty("gssEncMode", "disable");
        String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[4];
        int rows = 0;
        try (Connection c = DriverManager.getConnection(url, p)) {
            // prepareThreshold (5): unnamed statements first, then a named one
            try (PreparedStatement ps = c.prepareStatement("SELECT v FROM items WHERE id = ?")) {
                for (int i = 1; i <= 8; i++) {
                    ps.setInt(1, i);
                    rows += drain(ps.executeQuery());
                }
            }
            // a batch: every INSERT sent before one Sync
            try (PreparedStatement ins = c.prepareStatement("INSERT INTO sink VALUES (?, ?)")) {
                for (int i = 0; i < 10; i++) {
                    ins.setInt(1, 100 + i);
                    ins.setString(2, "b");
                    ins.addBatch();
                }
                ins.executeBatch();
            }
            c.setAutoCommit(false);
            // setFetchSize(50) on 300 rows: Executes with a row limit, PortalSuspended
            try (Statement st = c.createStatement()) {
                st.setFetchSize(50);
                rows += drain(st.executeQuery("SELECT id, v FROM items"));
            }
            // a cursor closed before its end
            try (Statement st = c.createStatement()) {
                st.setFetchSize(50);
                ResultSet rs = st.executeQuery("SELECT id FROM items ORDER BY id");
                for (int i = 0; i < 70 && rs.next(); i++) rows++;
                rs.close();
            }
            c.commit();
            try (Statement st = c.createStatement()) {
                st.executeUpdate("UPDATE items SET v = 'r' WHERE id <= 3");
            }
            c.rollback();
            c.setAutoCommit(true);
            try (Statement st = c.createStatement()) {
                st.executeUpdate("DELETE FROM sink WHERE id = 100");
            }
        }
        System.out.println("{\"rows\": " + rows + "}");
    }
}
