#include "output/dot.h"

#include <fmt/format.h>

#include <set>
#include <utility>

#include "engine/engine.h"

namespace lockwatch::output {
namespace {

constexpr std::uint16_t bit(engine::UsageBit b) {
    return static_cast<std::uint16_t>(1u << static_cast<int>(b));
}

// The fill says the strongest thing the usage bits say: used in hardirq,
// used in softirq, taken with an interrupt enabled, or none of these.
const char *fill_of(std::uint16_t usage) {
    using engine::UsageBit;
    if (usage & (bit(UsageBit::UsedInHardirq) | bit(UsageBit::UsedInHardirqRead))) {
        return "#f4a6a6";
    }
    if (usage & (bit(UsageBit::UsedInSoftirq) | bit(UsageBit::UsedInSoftirqRead))) {
        return "#fbd38d";
    }
    if (usage & (bit(UsageBit::EnabledHardirq) | bit(UsageBit::EnabledHardirqRead) |
                 bit(UsageBit::EnabledSoftirq) | bit(UsageBit::EnabledSoftirqRead))) {
        return "#bcd7f0";
    }
    return "#ffffff";
}

constexpr const char *kLegend =
    "fill: red used in hardirq, orange used in softirq, blue taken with an interrupt "
    "enabled; usage as lockdep prints it; red edges: the findings' chains";

}  // namespace

std::string dot_escape(const std::string &text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        if (c == '&') {
            out += "&amp;";  // Graphviz reads &name; as an entity
            continue;
        }
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
    }
    return out;
}

std::string render_dot(const engine::GraphView &graph,
                       const std::vector<engine::Finding> &findings) {
    std::set<std::string> in_finding;
    std::set<std::pair<std::string, std::string>> finding_edges;
    for (const engine::Finding &f : findings) {
        in_finding.insert(f.chain.begin(), f.chain.end());
        for (std::size_t i = 1; i < f.chain.size(); ++i) {
            finding_edges.emplace(f.chain[i - 1], f.chain[i]);
        }
    }
    std::string out = fmt::format(
        "digraph lockwatch {{\n  label=\"{} classes, {} dependencies, {} findings. {}\";\n"
        "  labelloc=t;\n  node [shape=box, style=filled, fontname=\"monospace\"];\n",
        graph.classes.size(), graph.dependencies.size(), findings.size(), kLegend);
    for (std::size_t i = 0; i < graph.classes.size(); ++i) {
        const auto &c = graph.classes[i];
        out += fmt::format("  c{} [label=\"{}\\n{{{}}}\", fillcolor=\"{}\"{}];\n", i,
                           dot_escape(c.name), engine::usage_chars(c.usage), fill_of(c.usage),
                           in_finding.count(c.name) ? ", color=red, penwidth=2" : "");
    }
    for (const auto &d : graph.dependencies) {
        if (d.prev >= graph.classes.size() || d.next >= graph.classes.size()) {
            continue;
        }
        bool red = finding_edges.count({graph.classes[d.prev].name, graph.classes[d.next].name});
        out += fmt::format("  c{} -> c{} [label=\"{}\"{}];\n", d.prev, d.next, d.reports,
                           red ? ", color=red, fontcolor=red, penwidth=2" : "");
    }
    out += "}\n";
    return out;
}

}  // namespace lockwatch::output
