// Object ids: a type prefix and 104 random bits in lower-case base32,
// such as "ten_k3v9x2m1q8d7r4t6p0za". Random, so that ids reveal nothing
// about how many objects exist and cannot be guessed.
#pragma once

#include <string>
#include <string_view>

#include "common/random.h"

namespace headroom {

// Prefixes, one per object type; an id's prefix tells what it names.
inline constexpr std::string_view kTenantIdPrefix = "ten";
inline constexpr std::string_view kKeyIdPrefix = "key";
inline constexpr std::string_view kRequestIdPrefix = "req";
inline constexpr std::string_view kAuditIdPrefix = "aud";
inline constexpr std::string_view kJobIdPrefix = "job";
inline constexpr std::string_view kReservationIdPrefix = "res";

std::string make_id(std::string_view prefix, Random& random);

// True when `id` has the given prefix and the shape make_id produces.
bool is_id_of(std::string_view id, std::string_view prefix);

}  // namespace headroom
