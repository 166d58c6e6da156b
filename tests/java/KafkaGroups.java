// Prints what Kafka's Java client computes for consumer groups, so that trio-brod's tests can
// compare its consumer protocol bytes and its assignors with the real thing. Used by
// tests/java_groups.py.
//
// Input on stdin, one request per line (tokens separated by one space). Strings are written
// as the hex of their UTF-8 bytes, "-" is null, a list is its items joined by "," and "." is
// the empty list; a partition is <topic hex>:<partition>.
//
//   SUB <version> <topics> <user data hex> <owned partitions> <generation> <rack>
//       -> the hex of ConsumerProtocol.serializeSubscription
//   ASN <version> <partitions> <user data hex>
//       -> the hex of ConsumerProtocol.serializeAssignment
//   DSUB <hex>   -> <topics> <user data> <owned partitions> <generation> <rack>, as read by
//                   ConsumerProtocol.deserializeSubscription (generation -1 when absent)
//   DASN <hex>   -> <partitions> <user data>, as read by deserializeAssignment
//   ASSIGN <assignor name> <topic hex>:<count>,... <member count>
//       followed by one line per member:
//       <member id> <group instance id> <topics> <owned partitions> <generation> <user data> <rack>
//       -> one line per member, in input order: <member id> <assigned partitions>
//   Each subscription goes through serializeSubscription and deserializeSubscription (v3)
//   and setGroupInstanceId, as ConsumerCoordinator.onLeaderElected hands it to the assignor,
//   into a HashMap filled in input order; the assignor is a new instance per request and is
//   called through assign(Cluster, GroupSubscription) with a one-broker Cluster (no racks).
//
// A request Java refuses prints "ERR <exception class>" instead.
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.kafka.clients.consumer.ConsumerPartitionAssignor;
import org.apache.kafka.clients.consumer.ConsumerPartitionAssignor.Assignment;
import org.apache.kafka.clients.consumer.ConsumerPartitionAssignor.GroupSubscription;
import org.apache.kafka.clients.consumer.ConsumerPartitionAssignor.Subscription;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.consumer.RoundRobinAssignor;
import org.apache.kafka.clients.consumer.internals.ConsumerProtocol;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;

public final class KafkaGroups {
    private KafkaGroups() {}

    private static byte[] unhex(String hex) {
        byte[] bytes = new byte[hex.length() / 2];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        }
        return bytes;
    }

    private static String hex(byte[] bytes) {
        StringBuilder out = new StringBuilder();
        for (byte b : bytes) {
            out.append(String.format("%02x", b & 0xff));
        }
        return out.toString();
    }

    private static String hex(ByteBuffer buffer) {
        if (buffer == null) {
            return "-";
        }
        ByteBuffer copy = buffer.duplicate();
        byte[] bytes = new byte[copy.remaining()];
        copy.get(bytes);
        return hex(bytes);
    }

    private static String str(String token) {
        return token.equals("-") ? null : new String(unhex(token), StandardCharsets.UTF_8);
    }

    private static String strHex(String s) {
        return s == null ? "-" : hex(s.getBytes(StandardCharsets.UTF_8));
    }

    private static ByteBuffer bytes(String token) {
        return token.equals("-") ? null : ByteBuffer.wrap(unhex(token));
    }

    private static List<String> items(String token) {
        List<String> out = new ArrayList<>();
        if (!token.equals(".")) {
            Collections.addAll(out, token.split(",", -1));
        }
        return out;
    }

    private static List<String> strings(String token) {
        List<String> out = new ArrayList<>();
        for (String item : items(token)) {
            out.add(str(item));
        }
        return out;
    }

    private static List<TopicPartition> partitions(String token) {
        List<TopicPartition> out = new ArrayList<>();
        for (String item : items(token)) {
            int colon = item.lastIndexOf(':');
            out.add(new TopicPartition(str(item.substring(0, colon)),
                    Integer.parseInt(item.substring(colon + 1))));
        }
        return out;
    }

    private static String join(List<String> parts) {
        return parts.isEmpty() ? "." : String.join(",", parts);
    }

    private static String stringsOut(List<String> values) {
        List<String> parts = new ArrayList<>();
        for (String v : values) {
            parts.add(strHex(v));
        }
        return join(parts);
    }

    private static String partitionsOut(List<TopicPartition> values) {
        List<String> parts = new ArrayList<>();
        for (TopicPartition tp : values) {
            parts.add(strHex(tp.topic()) + ":" + tp.partition());
        }
        return join(parts);
    }

    private static Subscription subscription(String[] t, int at) {
        return new Subscription(strings(t[at]), bytes(t[at + 1]), partitions(t[at + 2]),
                Integer.parseInt(t[at + 3]), Optional.ofNullable(str(t[at + 4])));
    }

    private static ConsumerPartitionAssignor assignor(String name) {
        switch (name) {
            case "range": return new RangeAssignor();
            case "roundrobin": return new RoundRobinAssignor();
            case "cooperative-sticky": return new CooperativeStickyAssignor();
            default: throw new IllegalArgumentException("unknown assignor " + name);
        }
    }

    private static void assign(String[] t, BufferedReader in, BufferedWriter out) throws IOException {
        ConsumerPartitionAssignor assignor = assignor(t[1]);
        Node node = new Node(0, "localhost", 9092);
        Node[] replicas = new Node[] {node};
        List<PartitionInfo> infos = new ArrayList<>();
        for (String item : items(t[2])) {
            int colon = item.lastIndexOf(':');
            String topic = str(item.substring(0, colon));
            int count = Integer.parseInt(item.substring(colon + 1));
            for (int p = 0; p < count; p++) {
                infos.add(new PartitionInfo(topic, p, node, replicas, replicas));
            }
        }
        Cluster cluster = new Cluster("trio-brod", Collections.singletonList(node), infos,
                Collections.emptySet(), Collections.emptySet());
        int members = Integer.parseInt(t[3]);
        List<String> order = new ArrayList<>();
        Map<String, Subscription> subscriptions = new HashMap<>();
        for (int i = 0; i < members; i++) {
            String[] m = in.readLine().split(" ", -1);
            String memberId = str(m[0]);
            Subscription given = new Subscription(strings(m[2]), bytes(m[5]), partitions(m[3]),
                    Integer.parseInt(m[4]), Optional.ofNullable(str(m[6])));
            Subscription wire = ConsumerProtocol.deserializeSubscription(
                    ConsumerProtocol.serializeSubscription(given, (short) 3));
            wire.setGroupInstanceId(Optional.ofNullable(str(m[1])));
            order.add(memberId);
            subscriptions.put(memberId, wire);
        }
        Map<String, Assignment> result;
        try {
            result = assignor.assign(cluster, new GroupSubscription(subscriptions)).groupAssignment();
        } catch (RuntimeException e) {
            out.write("ERR " + e.getClass().getName() + "\n");
            return;
        }
        for (String memberId : order) {
            Assignment a = result.get(memberId);
            out.write(strHex(memberId) + " "
                    + (a == null ? "MISSING" : partitionsOut(a.partitions())) + "\n");
        }
    }

    private static String handle(String[] t) {
        switch (t[0]) {
            case "SUB":
                return hex(ConsumerProtocol.serializeSubscription(subscription(t, 2),
                        Short.parseShort(t[1])));
            case "ASN":
                return hex(ConsumerProtocol.serializeAssignment(
                        new Assignment(partitions(t[2]), bytes(t[3])), Short.parseShort(t[1])));
            case "DSUB": {
                Subscription s = ConsumerProtocol.deserializeSubscription(ByteBuffer.wrap(unhex(t[1])));
                return stringsOut(s.topics()) + " " + hex(s.userData()) + " "
                        + partitionsOut(s.ownedPartitions()) + " " + s.generationId().orElse(-1)
                        + " " + strHex(s.rackId().orElse(null));
            }
            case "DASN": {
                Assignment a = ConsumerProtocol.deserializeAssignment(ByteBuffer.wrap(unhex(t[1])));
                return partitionsOut(a.partitions()) + " " + hex(a.userData());
            }
            default:
                throw new IllegalArgumentException("unknown request " + t[0]);
        }
    }

    public static void main(String[] args) throws IOException {
        // Kafka's loggers (when no logging is configured, log4j's fallback) write to
        // System.out: send them to stderr, and the answers straight to the real stdout.
        BufferedWriter out = new BufferedWriter(new OutputStreamWriter(
                new FileOutputStream(FileDescriptor.out), StandardCharsets.US_ASCII), 1 << 16);
        System.setOut(System.err);
        BufferedReader in = new BufferedReader(
                new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            String[] t = line.split(" ", -1);
            if (t[0].equals("ASSIGN")) {
                assign(t, in, out);
                out.write("END\n");
                out.flush();
                continue;
            }
            String answer;
            try {
                answer = handle(t);
            } catch (RuntimeException e) {
                answer = "ERR " + e.getClass().getName();
            }
            out.write(answer + "\n");
            // Answer each request at once: the caller waits for it before sending the next.
            out.flush();
        }
        out.flush();
    }
}
