// SPDX-License-Identifier: Apache-2.0
// A Settings with every option set to a value other than its default, for
// the tests (and the benchmark) that must see each option applied.
#pragma once

#include "common/settings.h"

namespace keepalive {

inline Settings every_option_set() {
  return Settings()
      .with_value(Option::kKeepIdle, 40)
      .with_value(Option::kKeepCnt, 4)
      .with_value(Option::kKeepIntvl, 7)
      .with_value(Option::kUserTimeout, 2000)
      .with_value(Option::kSynCnt, 3)
      .with_value(Option::kDeferAccept, 10)
      .with_value(Option::kMaxSeg, 1400)
      .with_value(Option::kWindowClamp, 9999);
}

}  // namespace keepalive
