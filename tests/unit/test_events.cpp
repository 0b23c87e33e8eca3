#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fcvm/vm/events.hpp"

using namespace fcvm;
using namespace fcvm::vm;

namespace {
class EventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fcvm-events.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    m_path = journal_path(m_dir);
  }
  void TearDown() override { std::filesystem::remove_all(m_dir); }
  std::string m_dir, m_path;
};
}  // namespace

TEST_F(EventsTest, EveryTypeHasANameThatParsesBack) {
  for (int i = 0; i <= static_cast<int>(EventType::kCloneStarted); ++i) {
    auto t = static_cast<EventType>(i);
    EXPECT_EQ(event_type_from_name(event_type_name(t)), t) << event_type_name(t);
  }
  EXPECT_FALSE(event_type_from_name("exploded"));
}

TEST_F(EventsTest, AppendedEventsReadBackInOrderFromSince) {
  journal_append(m_path, Event{100, EventType::kCreated, "id1", "web", {}, "img"});
  journal_append(m_path, Event{200, EventType::kRunning, "id1", "web"});
  journal_append(m_path, Event{300, EventType::kExited, "id1", "web", 3});
  auto all = journal_read(m_path, 0);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].detail, "img");
  EXPECT_EQ((*all)[2].exit_code, 3);
  auto late = journal_read(m_path, 200);
  ASSERT_TRUE(late);
  ASSERT_EQ(late->size(), 2u);
  EXPECT_EQ((*late)[0].type, EventType::kRunning);
  EXPECT_EQ(::access(m_path.c_str(), F_OK), 0);
}

TEST_F(EventsTest, GarbageLinesAreSkipped) {
  journal_append(m_path, Event{1, EventType::kCreated, "a", "a"});
  {
    std::ofstream f(m_path, std::ios::app);
    f << "not json\n{\"event\":\"exploded\",\"time_ns\":2}\n{\"time_ns\":\"x\"}\n";
  }
  journal_append(m_path, Event{3, EventType::kRemoved, "a", "a"});
  auto all = journal_read(m_path, 0);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].type, EventType::kRemoved);
}

TEST_F(EventsTest, AFollowerSeesNewEventsAndSurvivesRotation) {
  journal_append(m_path, Event{1, EventType::kCreated, "old", "old"});
  auto f = JournalFollower::open(m_path);
  ASSERT_TRUE(f);
  auto none = f->next(0);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty()) << "a follower starts at the end";
  journal_append(m_path, Event{2, EventType::kStarting, "new", "new"});
  auto one = f->next(1000);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].vm_id, "new");
  // Fill the journal past its limit: the next append rotates it.
  {
    std::ofstream fill(m_path, std::ios::app);
    fill << std::string(static_cast<size_t>(k_journal_max_bytes), '\n');
  }
  journal_append(m_path, Event{3, EventType::kRunning, "new", "new"});
  EXPECT_EQ(::access((m_path + ".1").c_str(), F_OK), 0) << "rotated";
  auto after = f->next(1000);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].type, EventType::kRunning);
  auto all = journal_read(m_path, 0);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 3u) << "the rotated file is read too";
  auto from_start = JournalFollower::open(m_path, /*from_beginning=*/true);
  ASSERT_TRUE(from_start);
  auto past = from_start->next(0);
  ASSERT_TRUE(past);
  EXPECT_EQ(past->size(), 3u);
}
