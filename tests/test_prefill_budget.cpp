// PrefillBudget, the scheduler's prompt tokens per step beside decoding requests: the budget is the most tokens whose
// measured cost fits (stall - 1) measured plain steps, within [1, cap]; times below are exact in binary, so each
// expected budget is the arithmetic written beside it.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "g4/session/prefill_budget.hpp"

namespace g4_test_prefill_budget {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

TEST_CASE("nothing decoding, or no stall limit: the cap; decoding but unmeasured: the probe") {
  PrefillBudget b(128, 2.5, 8);
  CHECK(b.Next(0) == 128);
  CHECK(b.Next(4) == 8);
  b.Record(4, 0, 0.25);  // a plain step alone does not tell what a token costs
  CHECK(b.Next(4) == 8);
  CHECK(PrefillBudget(128, 0.0).Next(4) == 128);
  CHECK(PrefillBudget(4, 2.5, 8).Next(4) == 4);  // the probe never exceeds the cap
}

TEST_CASE("tokens that fit (stall - 1) plain steps") {
  PrefillBudget b(128, 2.5, 8);
  b.Record(4, 0, 0.25);               // plain step of 4 rows: 0.25 s
  b.Record(4, 8, 0.25 + 8 * 0.0625);  // 8 tokens added 0.5 s: 0.0625 s each
  CHECK(b.plain_seconds(4) == 0.25);
  CHECK(b.token_seconds() == 0.0625);
  CHECK(b.Next(4) == 6);  // floor(1.5 * 0.25 / 0.0625)
  // 8 rows, unmeasured: the plain step of the most rows measured below (4).
  CHECK(b.Next(8) == 6);
  b.Record(8, 0, 0.5);
  CHECK(b.Next(8) == 12);  // floor(1.5 * 0.5 / 0.0625)
  CHECK(b.Next(2) == 8);   // no plain step of 2 rows or fewer: the probe
  // Cheap tokens stop at the cap, dear ones at one token a step.
  PrefillBudget cheap(16, 2.5), dear(16, 2.5);
  cheap.Record(1, 0, 1.0);
  cheap.Record(1, 4, 1.0 + 4 * 0.0625);
  CHECK(cheap.Next(1) == 16);  // 24 fit
  dear.Record(1, 0, 0.25);
  dear.Record(1, 2, 0.25 + 2 * 1.0);
  CHECK(dear.Next(1) == 1);  // 0.375 fit
}

TEST_CASE("moving averages; a prefill-only step counts over the plain step of the fewest rows") {
  PrefillBudget b(512, 3.0);
  b.Record(1, 0, 0.25);
  b.Record(1, 0, 0.5);
  CHECK(b.plain_seconds(1) == 0.3125);  // 0.75 * 0.25 + 0.25 * 0.5
  b.Record(0, 64, 0.3125 + 64 * 0.125);
  CHECK(b.token_seconds() == 0.125);
  b.Record(0, 64, 0.3125 + 64 * 0.25);
  CHECK(b.token_seconds() == 0.15625);  // 0.75 * 0.125 + 0.25 * 0.25
  CHECK(b.Next(1) == 4);                // floor(2 * 0.3125 / 0.15625)
  // Beside decoding rows whose plain step is unknown the tokens' share cannot be told: not recorded.
  PrefillBudget c(512, 2.5);
  c.Record(3, 10, 5.0);
  CHECK(c.token_seconds() == 0.0);
  CHECK(c.plain_seconds(3) == 0.0);
  // Before any plain step, a prefill-only step counts whole (more than its tokens cost: a smaller budget).
  c.Record(0, 10, 5.0);
  CHECK(c.token_seconds() == 0.5);
  // Once a token's cost is known, a step beside decoding rows without a plain step of its own gives one: what is
  // left of it (prompts that arrived together never leave a step without prefill while one of them prefills).
  c.Record(3, 4, 2.0 + 4 * 0.5);
  CHECK(c.plain_seconds(3) == 2.0);
  CHECK(c.token_seconds() == 0.5);
  CHECK(c.Next(3) == 6);  // floor(1.5 * 2 / 0.5)
}

TEST_CASE("bad options are errors naming the budget") {
  CHECK_THROWS_WITH_AS(PrefillBudget(0), doctest::Contains("prefill budget"), Error);
  CHECK_THROWS_WITH_AS(PrefillBudget(8, 1.0), doctest::Contains("stall ratio must be > 1"), Error);
  CHECK_THROWS_WITH_AS(PrefillBudget(8, std::numeric_limits<double>::quiet_NaN()), doctest::Contains("stall"), Error);
}

}  // namespace g4_test_prefill_budget
