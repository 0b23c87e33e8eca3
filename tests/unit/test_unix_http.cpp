// UnixHttpTransport (the Firecracker API client's HTTP/1.1 over a Unix socket) against a tiny
// in-test server that reads requests and answers canned bytes: framing, keep-alive, reconnects,
// malformed answers and timeouts.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vmm/firecracker/api_client.hpp"

using namespace fcvm;
using namespace std::chrono_literals;
using vmm::firecracker::ApiClient;
using vmm::firecracker::ApiRequest;
using vmm::firecracker::ApiResponse;
using vmm::firecracker::ApiTimeouts;
using vmm::firecracker::UnixHttpTransport;

namespace {

// What the server does with one request it has read.
struct Step {
  enum class Then { kKeepOpen, kClose, kWaitForClientToClose };
  std::vector<std::string> pieces{};  // the answer, written piece by piece with a pause between
  Then then = Then::kKeepOpen;
};

Step answer(std::string bytes, Step::Then then = Step::Then::kKeepOpen) {
  return Step{{std::move(bytes)}, then};
}

// The answer one byte per write.
Step dribble(const std::string& bytes) {
  Step step;
  for (char c : bytes) step.pieces.emplace_back(1, c);
  return step;
}

// Reads the request, then closes the connection without a word.
Step hang_up() { return Step{{}, Step::Then::kClose}; }

// Reads the request, answers what is given (maybe nothing), then waits for the client to leave.
Step then_wait(std::string bytes = "") {
  Step step{{}, Step::Then::kWaitForClientToClose};
  if (!bytes.empty()) step.pieces.push_back(std::move(bytes));
  return step;
}

const std::string k_ok_json = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"id\":\"x\"}\n";
const std::string k_no_content = "HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\n\r\n";

// Serves one script per accepted connection, in order, on a thread. Everything it observed is
// readable after finish().
class CannedServer {
 public:
  explicit CannedServer(std::vector<std::vector<Step>> connections) {
    char templ[] = "/tmp/fcvm-http-XXXXXX";
    if (::mkdtemp(templ) != nullptr) m_dir = templ;
    m_path = m_dir + "/api.sock";
    auto fd = unix_listen(m_path);
    if (fd) m_listen = std::move(*fd);
    int p[2];
    if (::pipe2(p, O_CLOEXEC) == 0) {
      m_stop_read.reset(p[0]);
      m_stop_write.reset(p[1]);
    }
    m_thread = std::thread([this, scripts = std::move(connections)] { serve(scripts); });
  }
  ~CannedServer() {
    finish();
    if (!m_dir.empty()) (void)remove_all(m_dir);
  }
  CannedServer(const CannedServer&) = delete;
  CannedServer& operator=(const CannedServer&) = delete;

  const std::string& path() const { return m_path; }
  // Stops waiting for more connections or requests and joins the thread.
  void finish() {
    if (!m_thread.joinable()) return;
    (void)!::write(m_stop_write.get(), "x", 1);
    m_thread.join();
  }
  int accepts() const { return m_accepts; }
  const std::vector<std::string>& requests() const { return m_requests; }

 private:
  // Waits for fd to become readable; false when stopped or after 10 s.
  bool wait(int fd) {
    pollfd p[2] = {{fd, POLLIN, 0}, {m_stop_read.get(), POLLIN, 0}};
    if (::poll(p, 2, 10000) <= 0) return false;
    return p[1].revents == 0;
  }

  // One whole request (head and Content-Length body) from the connection; nullopt at its end.
  std::optional<std::string> read_request(int fd, std::string& buffer) {
    for (;;) {
      auto end = buffer.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        auto at = buffer.find("Content-Length: ");
        if (at != std::string::npos && at < end) length = std::stoul(buffer.substr(at + 16));
        if (buffer.size() >= end + 4 + length) {
          auto request = buffer.substr(0, end + 4 + length);
          buffer.erase(0, request.size());
          return request;
        }
      }
      if (!wait(fd)) return std::nullopt;
      char chunk[4096];
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buffer.append(chunk, static_cast<size_t>(n));
    }
  }

  void serve(const std::vector<std::vector<Step>>& scripts) {
    std::vector<UniqueFd> kept;  // connections left open until the server ends
    for (const auto& steps : scripts) {
      if (!wait(m_listen.get())) return;
      UniqueFd conn(::accept4(m_listen.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn) return;
      ++m_accepts;
      std::string buffer;
      for (const auto& step : steps) {
        auto request = read_request(conn.get(), buffer);
        if (!request) break;
        m_requests.push_back(*request);
        for (const auto& piece : step.pieces) {
          if (!write_all(conn.get(), piece)) break;
          if (step.pieces.size() > 1) std::this_thread::sleep_for(200us);
        }
        if (step.then == Step::Then::kClose) {
          conn.reset();
          break;
        }
        if (step.then == Step::Then::kWaitForClientToClose) {
          char c;
          while (wait(conn.get()) && ::read(conn.get(), &c, 1) > 0) {
          }
          conn.reset();
          break;
        }
      }
      if (conn) kept.push_back(std::move(conn));
    }
  }

  std::string m_dir;
  std::string m_path;
  UniqueFd m_listen;
  UniqueFd m_stop_read;
  UniqueFd m_stop_write;
  int m_accepts = 0;
  std::vector<std::string> m_requests;
  std::thread m_thread;
};

ApiRequest get(const std::string& path) { return ApiRequest{"GET", path, std::nullopt}; }

const ApiTimeouts k_timeouts{1000ms, 5000ms};

TEST(UnixHttpTransport, SendsTheRequestAndReadsAContentLengthBody) {
  CannedServer server(
      {{answer("HTTP/1.1 400 Bad Request\r\nServer: Firecracker API\r\n"
               "Content-Type: application/json\r\ncontent-LENGTH: 24\r\n\r\n"
               "{\"fault_message\":\"nope\"}")}});
  UnixHttpTransport transport(server.path());
  auto r = transport.send(ApiRequest{"PUT", "/boot-source", std::string("{\"a\":1}")}, k_timeouts);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->body, "{\"fault_message\":\"nope\"}");
  server.finish();
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0],
            "PUT /boot-source HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
            "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
}

TEST(UnixHttpTransport, ReadsAChunkedBodyAndKeepsTheConnection) {
  CannedServer server({{answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "5;ext=1\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\nX-Trailer: y\r\n\r\n"),
                        answer(k_no_content)}});
  UnixHttpTransport transport(server.path());
  auto r = transport.send(get("/"), k_timeouts);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"a\": 1}");
  auto again = transport.send(get("/"), k_timeouts);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(again->status, 204);
  server.finish();
  EXPECT_EQ(server.accepts(), 1);
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.requests()[0],
            "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n");
}

TEST(UnixHttpTransport, A204HasNoBodyAndKeepAliveReusesOneConnection) {
  CannedServer server({{answer(k_no_content), answer(k_ok_json), answer(k_no_content)}});
  ApiClient client(std::make_unique<UnixHttpTransport>(server.path()), k_timeouts);
  EXPECT_TRUE(client.put("/actions", {{"action_type", "InstanceStart"}}));
  auto info = client.get("/");
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ((*info)["id"], "x");
  EXPECT_TRUE(client.patch("/vm", {{"state", "Paused"}}));
  server.finish();
  EXPECT_EQ(server.accepts(), 1);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(UnixHttpTransport, ReconnectsWhenTheServerClosedAKeptConnection) {
  CannedServer server({{answer(k_ok_json, Step::Then::kClose)}, {answer(k_no_content)}});
  UnixHttpTransport transport(server.path());
  ASSERT_TRUE(transport.send(get("/"), k_timeouts));
  // Make sure the close has happened before the next request.
  std::this_thread::sleep_for(20ms);
  auto r = transport.send(get("/machine-config"), k_timeouts);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 204);
  server.finish();
  EXPECT_EQ(server.accepts(), 2);
}

TEST(UnixHttpTransport, ResendsOnceWhenAKeptConnectionClosesBeforeAnyAnswerByte) {
  // The server reads the second request and hangs up without answering: the request is sent
  // again on a fresh connection.
  CannedServer server({{answer(k_ok_json), hang_up()}, {answer(k_no_content)}});
  UnixHttpTransport transport(server.path());
  ASSERT_TRUE(transport.send(get("/"), k_timeouts));
  auto r = transport.send(get("/vm/config"), k_timeouts);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 204);
  server.finish();
  EXPECT_EQ(server.accepts(), 2);
  ASSERT_EQ(server.requests().size(), 3u);
  EXPECT_EQ(server.requests()[1], server.requests()[2]);
}

TEST(UnixHttpTransport, NeverResendsOnceAnswerBytesArrived) {
  CannedServer server(
      {{answer(k_ok_json),
        answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Step::Then::kClose)},
       {answer(k_no_content)}});
  UnixHttpTransport transport(server.path());
  ASSERT_TRUE(transport.send(get("/"), k_timeouts));
  auto r = transport.send(get("/"), k_timeouts);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kProtocol);
  EXPECT_EQ(r.error().message(),
            "GET /: connection closed after 3 of 10 body bytes (API socket " + server.path() + ")");
  server.finish();
  EXPECT_EQ(server.accepts(), 1);
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(UnixHttpTransport, NeverResendsOnAFreshConnection) {
  CannedServer server({{hang_up()}, {answer(k_no_content)}});
  UnixHttpTransport transport(server.path());
  auto r = transport.send(get("/"), k_timeouts);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kSystem);
  EXPECT_EQ(r.error().message(),
            "GET /: the server closed the connection without answering (API socket " +
                server.path() + ")");
  server.finish();
  EXPECT_EQ(server.accepts(), 1);
}

TEST(UnixHttpTransport, ConnectionCloseEndsTheConnection) {
  // The server would keep the connection: the client closes it itself and connects again.
  CannedServer server(
      {{then_wait("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")},
       {answer(k_no_content)}});
  UnixHttpTransport transport(server.path());
  auto first = transport.send(get("/"), k_timeouts);
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(first->body, "{}");
  auto second = transport.send(get("/"), k_timeouts);
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(second->status, 204);
  server.finish();
  EXPECT_EQ(server.accepts(), 2);
}

TEST(UnixHttpTransport, ABodyWithoutLengthEndsWithTheConnection) {
  CannedServer server({{answer("HTTP/1.0 200 OK\r\n\r\n{\"till\":\"eof\"}", Step::Then::kClose)},
                       {answer(k_no_content)}});
  UnixHttpTransport transport(server.path());
  auto r = transport.send(get("/"), k_timeouts);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->body, "{\"till\":\"eof\"}");
  EXPECT_TRUE(transport.send(get("/"), k_timeouts));
  server.finish();
  EXPECT_EQ(server.accepts(), 2);
}

TEST(UnixHttpTransport, SkipsAnInterimAnswer) {
  CannedServer server({{answer("HTTP/1.1 100 Continue\r\n\r\n" + k_ok_json)}});
  UnixHttpTransport transport(server.path());
  auto r = transport.send(get("/"), k_timeouts);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"id\":\"x\"}\n");
}

TEST(UnixHttpTransport, ReassemblesAnAnswerSplitAcrossManySmallWrites) {
  CannedServer server({{dribble(k_ok_json),
                        dribble("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"),
                        dribble(k_no_content)}});
  UnixHttpTransport transport(server.path());
  auto a = transport.send(get("/"), k_timeouts);
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(a->body, "{\"id\":\"x\"}\n");
  auto b = transport.send(get("/"), k_timeouts);
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(b->body, "abcdef");
  auto c = transport.send(get("/"), k_timeouts);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->status, 204);
  server.finish();
  EXPECT_EQ(server.accepts(), 1);
}

TEST(UnixHttpTransport, RejectsMalformedAnswersNamingTheProblem) {
  struct Case {
    std::string answer;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"HTTP/1.1 OK\r\n\r\n", "malformed status line \"HTTP/1.1 OK\""},
      {"SSH-2.0-OpenSSH_9.2\r\n", "malformed status line \"SSH-2.0-OpenSSH_9.2\""},
      {"HTTP/2 200\r\n\r\n", "malformed status line"},
      {"HTTP/1.1 999 Nine\r\n\r\n", "malformed status line"},
      {"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", "malformed header line \"Bad Header\""},
      {"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n", "folded header line"},
      {"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "malformed Content-Length \"abc\""},
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       "conflicting Content-Length headers"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
       "Content-Length 99999999 exceeds the limit of 16777216 bytes"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       "unsupported Transfer-Encoding \"gzip, chunked\""},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
       "malformed chunk size line \"zz\""},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
       "chunk of 2 bytes not followed by CRLF"},
      {"HTTP/1.1 200 OK\r\nX-Big: " + std::string(70 * 1024, 'a') + "\r\n\r\n",
       "header longer than 65536 bytes"},
      {"HTTP/1.1 101 Switching Protocols\r\n\r\n", "unexpected 101 Switching Protocols"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.problem);
    // The server keeps the connection open: the verdict must not wait for its end.
    CannedServer server({{then_wait(c.answer)}});
    UnixHttpTransport transport(server.path());
    auto r = transport.send(get("/"), k_timeouts);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::kProtocol) << r.error().message();
    EXPECT_EQ(r.error().message().rfind("GET /: " + c.problem, 0), 0u) << r.error().message();
    EXPECT_TRUE(r.error().message().ends_with(" (API socket " + server.path() + ")"));
  }
}

TEST(UnixHttpTransport, AServerThatNeverAnswersTimesOut) {
  CannedServer server({{then_wait()}});
  UnixHttpTransport transport(server.path());
  auto start = std::chrono::steady_clock::now();
  auto r = transport.send(get("/"), ApiTimeouts{1000ms, 300ms});
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kTimeout);
  EXPECT_EQ(
      r.error().message(),
      "GET /: timed out after 300 ms waiting for the answer (API socket " + server.path() + ")");
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 1500ms);
}

TEST(UnixHttpTransport, AMissingSocketFailsAtOnce) {
  char templ[] = "/tmp/fcvm-http-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  std::string path = std::string(templ) + "/absent.sock";
  UnixHttpTransport transport(path);
  auto start = std::chrono::steady_clock::now();
  auto r = transport.send(get("/"), k_timeouts);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kSystem);
  EXPECT_EQ(r.error().message(),
            "GET /: connect: No such file or directory (API socket " + path + ")");
  EXPECT_LT(took, 500ms);
  (void)remove_all(templ);
}

TEST(UnixHttpTransport, RefusesARequestLineItCannotWrite) {
  UnixHttpTransport transport("/nonexistent/api.sock");
  auto r = transport.send(get("/a b\r\nX: y"), k_timeouts);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
}

}  // namespace
