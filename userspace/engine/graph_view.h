// The dependency graph as plain data, for renderers (output/dot.h): every
// class with its usage bits, every dependency with how often it was
// reported. A copy, so that a renderer needs nothing of the engine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/events.h"

namespace lockwatch::engine {

struct GraphView {
    struct Class {
        ClassId id = 0;
        std::string name;
        std::uint16_t usage = 0;  // lock_flag() bits, as usage_chars() reads them
    };
    struct Dependency {
        std::uint32_t prev = 0;  // indexes into classes
        std::uint32_t next = 0;
        // How often it was reported: once per context and read level by the
        // kernel side, once per new read level in a trace of acquires.
        std::uint32_t reports = 0;
    };
    std::vector<Class> classes;
    std::vector<Dependency> dependencies;
};

}  // namespace lockwatch::engine
