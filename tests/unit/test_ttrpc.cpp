// ttrpc 1.x: the frame codec (header layout, odd stream ids, the 4 MiB cap, bytes in any
// pieces), request dispatch (status codes containerd maps back) and one connection serving
// concurrent calls (a blocked Wait does not hold up a State), over a real socket pair.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "fcvm/ttrpc/frame.hpp"
#include "fcvm/ttrpc/server.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "ttrpc/ttrpc.pb.h"

namespace fcvm {
namespace {

using ttrpc::Frame;
using ttrpc::MessageType;

std::string request_bytes(const std::string& service, const std::string& method,
                          const std::string& payload) {
  ::ttrpc::Request r;
  r.set_service(service);
  r.set_method(method);
  r.set_payload(payload);
  return r.SerializeAsString();
}

::ttrpc::Response response_of(const Frame& f) {
  ::ttrpc::Response r;
  EXPECT_TRUE(r.ParseFromString(f.payload));
  return r;
}

TEST(TtrpcFrame, HeaderIsBigEndianLengthIdTypeFlags) {
  auto bytes = ttrpc::encode_frame({0x01020305, MessageType::kRequest, 0, "abc", false});
  ASSERT_TRUE(bytes);
  EXPECT_EQ(*bytes, std::string("\x00\x00\x00\x03\x01\x02\x03\x05\x01\x00"
                                "abc",
                                13));
  EXPECT_FALSE(ttrpc::encode_frame(
      {1, MessageType::kResponse, 0, std::string(ttrpc::k_max_payload + 1, 'x'), false}));
}

TEST(TtrpcFrame, DecodesFramesFedInAnyPieces) {
  std::string stream;
  for (uint32_t id : {1u, 3u, 5u}) {
    stream += *ttrpc::encode_frame({id, MessageType::kRequest, 0, std::string(id * 7, 'p'), false});
  }
  ttrpc::FrameReader reader;
  std::vector<Frame> got;
  for (char c : stream) {  // one byte at a time
    reader.feed(std::string_view(&c, 1));
    while (auto f = reader.next()) got.push_back(*f);
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].stream_id, 3u);
  EXPECT_EQ(got[2].payload, std::string(35, 'p'));
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(TtrpcFrame, AnOversizedPayloadIsSkippedAndReported) {
  std::string header("\x00\x40\x00\x01\x00\x00\x00\x07\x01\x00", 10);  // 4 MiB + 1
  ttrpc::FrameReader reader;
  reader.feed(header);
  auto big = reader.next();
  ASSERT_TRUE(big);
  EXPECT_TRUE(big->oversized);
  EXPECT_EQ(big->stream_id, 7u);
  // Its payload arrives in pieces and is dropped; the next frame decodes.
  reader.feed(std::string(3u << 20, 'x'));
  EXPECT_FALSE(reader.next());
  reader.feed(std::string((1u << 20) + 1, 'x') +
              *ttrpc::encode_frame({9, MessageType::kRequest, 0, "after", false}));
  auto after = reader.next();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->stream_id, 9u);
  EXPECT_EQ(after->payload, "after");
  EXPECT_LE(reader.buffered(), 0u);
}

TEST(TtrpcRequest, WireBytesAsContainerdEncodesThem) {
  // A Connect request for task "t3", encoded by hand from the protobuf wire format: service
  // (field 1), method (field 2), payload (field 3: ConnectRequest{id = "t3"}).
  std::string wire = std::string("\x0a\x17") + "containerd.task.v2.Task" + "\x12\x07" + "Connect" +
                     std::string("\x1a\x04\x0a\x02t3", 6);
  ::ttrpc::Request r;
  ASSERT_TRUE(r.ParseFromString(wire));
  EXPECT_EQ(r.service(), "containerd.task.v2.Task");
  EXPECT_EQ(r.method(), "Connect");
  EXPECT_EQ(r.payload(), std::string("\x0a\x02t3", 4));
  EXPECT_EQ(request_bytes("containerd.task.v2.Task", "Connect", std::string("\x0a\x02t3", 4)),
            wire);
}

TEST(TtrpcDispatch, StatusCodesForEveryKindOfBadRequest) {
  ttrpc::Registry registry;
  registry.add("containerd.task.v2.Task", "State", [](const ttrpc::Call& c) -> Result<std::string> {
    if (c.payload == "missing") return fail(ErrorCode::kNotFound, "no task missing");
    return "state-of-" + c.payload + (c.metadata.count("containerd-namespace-ttrpc") ? "@ns" : "");
  });
  auto call = [&](uint32_t sid, const std::string& payload) {
    return registry.dispatch({sid, MessageType::kRequest, 0, payload, false});
  };
  auto ok = call(1, request_bytes("containerd.task.v2.Task", "State", "t1"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->type, MessageType::kResponse);
  EXPECT_EQ(ok->stream_id, 1u);
  EXPECT_EQ(response_of(*ok).status().code(), 0);
  EXPECT_EQ(response_of(*ok).payload(), "state-of-t1");
  ::ttrpc::Request with_ns;
  with_ns.set_service("containerd.task.v2.Task");
  with_ns.set_method("State");
  with_ns.set_payload("t2");
  auto* kv = with_ns.add_metadata();
  kv->set_key("containerd-namespace-ttrpc");
  kv->set_value("k8s.io");
  EXPECT_EQ(response_of(*call(3, with_ns.SerializeAsString())).payload(), "state-of-t2@ns");
  auto code = [&](const std::optional<Frame>& f) { return response_of(*f).status().code(); };
  EXPECT_EQ(code(call(5, request_bytes("containerd.task.v2.Task", "State", "missing"))), 5);
  EXPECT_EQ(code(call(7, request_bytes("containerd.task.v2.Task", "Checkpoint", ""))), 12);
  EXPECT_EQ(code(call(9, request_bytes("no.such.Service", "State", ""))), 12);
  EXPECT_EQ(response_of(*call(9, request_bytes("no.such.Service", "X", ""))).status().message(),
            "service no.such.Service");
  EXPECT_EQ(code(call(2, request_bytes("containerd.task.v2.Task", "State", "t1"))), 3);  // even
  EXPECT_EQ(code(call(11, std::string("\xff\xff\xff", 3))), 3);                     // not a Request
  EXPECT_EQ(code(registry.dispatch({13, MessageType::kRequest, 0, "", true})), 8);  // oversized
  EXPECT_FALSE(registry.dispatch({15, MessageType::kData, 0, "", false}));          // ignored
}

TEST(TtrpcServer, ABlockedCallDoesNotHoldUpAnotherOnTheSameConnection) {
  // Wait blocks until this test has read State's answer: only a server that serves State while
  // Wait is in progress gets there.
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  ttrpc::Registry registry;
  registry.add("containerd.task.v2.Task", "Wait", [&](const ttrpc::Call&) -> Result<std::string> {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return release; });
    return std::string("exited");
  });
  registry.add("containerd.task.v2.Task", "State",
               [&](const ttrpc::Call&) -> Result<std::string> { return std::string("running"); });
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  std::thread server([&] { EXPECT_TRUE(ttrpc::serve_connection(sv[1], registry)); });
  auto send = [&](uint32_t sid, const char* method) {
    ASSERT_TRUE(write_all(
        sv[0],
        *ttrpc::encode_frame({sid, MessageType::kRequest, 0,
                              request_bytes("containerd.task.v2.Task", method, ""), false})));
  };
  ttrpc::FrameReader reader;
  auto read_one = [&]() -> Frame {
    char buf[4096];
    for (;;) {
      if (auto f = reader.next()) return *f;
      ssize_t n = ::read(sv[0], buf, sizeof buf);
      if (n <= 0) return {};
      reader.feed(std::string_view(buf, static_cast<size_t>(n)));
    }
  };
  send(9, "Wait");
  send(11, "State");
  auto first = read_one();
  EXPECT_EQ(first.stream_id, 11u);
  EXPECT_EQ(response_of(first).payload(), "running");
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  auto second = read_one();
  EXPECT_EQ(second.stream_id, 9u);
  EXPECT_EQ(response_of(second).payload(), "exited");
  ::close(sv[0]);
  server.join();
  ::close(sv[1]);
}

}  // namespace
}  // namespace fcvm
