#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>

#include "fcvm/util/inet.hpp"

using namespace fcvm;

TEST(Inet, AFreePortIsFreeAndAListenerIsSeen) {
  auto port = free_tcp_port("127.0.0.1");
  ASSERT_TRUE(port) << port.error().to_string();
  EXPECT_GT(*port, 0);
  EXPECT_FALSE(tcp_port_open("127.0.0.1", *port));
  auto fd = inet_bind("127.0.0.1", *port);
  ASSERT_TRUE(fd) << fd.error().to_string();
  ASSERT_EQ(::listen(fd->get(), 1), 0);
  EXPECT_TRUE(tcp_port_open("127.0.0.1", *port));
  auto bound = inet_bound_port(fd->get());
  ASSERT_TRUE(bound);
  EXPECT_EQ(*bound, *port);
  auto again = inet_bind("127.0.0.1", *port);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().sys_errno(), EADDRINUSE);
}

TEST(Inet, BadAddressesAreInvalidInput) {
  auto r = inet_bind("1.2.3.4.5", 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(r.error().message().find("1.2.3.4.5"), std::string::npos);
  EXPECT_FALSE(tcp_port_open("not-an-address", 80));
  auto foreign = inet_bind("203.0.113.77", 0, /*udp=*/true);
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().sys_errno(), EADDRNOTAVAIL);
}
