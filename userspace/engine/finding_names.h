// How findings are named: syzbot-style titles, stable signatures, printable
// class names, and which stack frames are the lock implementation itself.
// The engine names each finding it makes with these; renderers reuse them.
#pragma once

#include <string>
#include <string_view>

#include "engine/events.h"
#include "engine/finding.h"

namespace lockwatch::engine {

// Lock implementation frames: lockdep/lockwatch plumbing and the
// out-of-line lock functions (_raw_spin_lock, __raw_spin_lock, ...). The
// "at:" of a held lock starts after them, as lockdep's acquire_ip does.
bool is_lock_internal(std::string_view symbol);
// is_lock_internal() plus the public inline wrappers (spin_lock_irq, ...):
// what a title must skip to name the function that took the lock.
bool is_lock_primitive(std::string_view symbol);

// syzbot's title: "possible deadlock in FUNCTION" ("inconsistent lock state
// in FUNCTION"), FUNCTION being the first frame of the stack that is neither
// a lock primitive nor an inline expansion.
std::string make_title(FindingKind kind, const Stack *stack);

// 16 hex digits of FNV-1a over the signature text.
std::string signature_hash(std::string_view key);

// A printable class name; unnamed classes get a stable placeholder derived
// from the id (which may be an address, so it is hashed, never printed).
std::string report_class_name(const std::string &name, ClassId id);

}  // namespace lockwatch::engine
