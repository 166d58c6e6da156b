// Prints what Kafka's Java client computes for message keys, so that trio-brod's tests can
// compare its partitioners with the real thing. Used by tests/javautil.py.
//
// Input, on stdin, one request per line:  <partition count> <key as hex>
// (the hex may be empty, for the empty key). Output, on stdout, one line per request:
//   <Utils.murmur2(key)> <Utils.toPositive(Utils.murmur2(key)) % count>
// The program also asks BuiltInPartitioner.partitionForKey, the method the producer itself
// calls for keyed records, and exits with status 2 if it ever disagrees with the formula.
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.utils.Utils;

public final class KafkaPartitions {
    private KafkaPartitions() {}

    private static byte[] unhex(String hex, int lineNumber) {
        if (hex.length() % 2 != 0) {
            throw new IllegalArgumentException("line " + lineNumber + ": odd-length hex key");
        }
        byte[] bytes = new byte[hex.length() / 2];
        for (int i = 0; i < bytes.length; i++) {
            int high = Character.digit(hex.charAt(2 * i), 16);
            int low = Character.digit(hex.charAt(2 * i + 1), 16);
            if (high < 0 || low < 0) {
                throw new IllegalArgumentException("line " + lineNumber + ": bad hex key");
            }
            bytes[i] = (byte) ((high << 4) | low);
        }
        return bytes;
    }

    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(
                new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        BufferedWriter out = new BufferedWriter(
                new OutputStreamWriter(System.out, StandardCharsets.US_ASCII), 1 << 16);
        int lineNumber = 0;
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            lineNumber++;
            int space = line.indexOf(' ');
            if (space < 0) {
                throw new IllegalArgumentException("line " + lineNumber + ": expected '<count> <hex>'");
            }
            int count = Integer.parseInt(line.substring(0, space));
            byte[] key = unhex(line.substring(space + 1).trim(), lineNumber);
            int hash = Utils.murmur2(key);
            int partition = Utils.toPositive(hash) % count;
            int producerPartition = BuiltInPartitioner.partitionForKey(key, count);
            if (producerPartition != partition) {
                out.flush();
                System.err.println("line " + lineNumber + ": BuiltInPartitioner.partitionForKey = "
                        + producerPartition + " but toPositive(murmur2) % count = " + partition);
                System.exit(2);
            }
            out.write(hash + " " + partition + "\n");
        }
        out.flush();
    }
}
