// The lock graph as Graphviz dot (--graph FILE.dot): classes as nodes
// filled by their usage bits, dependencies as edges labelled with how often
// they were reported, and every finding's chain in red. Render with
// `dot -Tsvg FILE.dot > graph.svg`.
#pragma once

#include <string>
#include <vector>

#include "engine/finding.h"
#include "engine/graph_view.h"

namespace lockwatch::output {

// --graph's help, the same for every command that has it.
inline constexpr const char *kGraphOptionHelp =
    "At the end, write the lock graph as Graphviz dot to FILE (replaced): classes filled by "
    "their usage, dependencies with their report counts, the findings' chains in red; render "
    "with dot -Tsvg FILE > graph.svg";

// A dot string literal's contents: quotes and backslashes escaped, '&' as
// "&amp;" (Graphviz reads entities), control characters as '?'.
std::string dot_escape(const std::string &text);

// The whole graph, O(classes + dependencies + the findings' chains).
std::string render_dot(const engine::GraphView &graph,
                       const std::vector<engine::Finding> &findings);

}  // namespace lockwatch::output
