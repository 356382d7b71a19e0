#include "engine/flat_json.h"

#include <array>
#include <charconv>
#include <cstring>

#include <nlohmann/json.hpp>

namespace lockwatch::engine {
namespace {

// The bytes a string holds as they are: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> kPlainByte = [] {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x80; ++c) {
        t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
    }
    return t;
}();

class FlatReader {
  public:
    FlatReader(std::string_view text, FlatObject *out)
        : p_(text.data()), end_(text.data() + text.size()), out_(out) {}

    bool object() {
        skip_space();
        if (!take('{')) {
            return false;
        }
        skip_space();
        if (!take('}')) {
            do {
                skip_space();
                std::string_view key;
                if (!string(&key)) {
                    return false;
                }
                skip_space();
                if (!take(':')) {
                    return false;
                }
                skip_space();
                if (!value(&out_->add(key))) {
                    return false;
                }
                skip_space();
            } while (take(','));
            if (!take('}')) {
                return false;
            }
        }
        skip_space();
        return p_ == end_;
    }

  private:
    // JSON's whitespace; most tokens have none before them, and one compare
    // says so.
    void skip_space() {
        while (p_ < end_ && static_cast<unsigned char>(*p_) <= ' ' &&
               (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) {
            ++p_;
        }
    }
    bool take(char c) {
        if (p_ < end_ && *p_ == c) {
            ++p_;
            return true;
        }
        return false;
    }
    bool word(std::string_view w) {
        if (static_cast<std::size_t>(end_ - p_) < w.size() ||
            std::memcmp(p_, w.data(), w.size()) != 0) {
            return false;
        }
        p_ += w.size();
        return true;
    }
    static bool digit(char c) { return c >= '0' && c <= '9'; }

    // A control character or a non-ASCII byte (UTF-8 the DOM validates) or
    // an escape: the DOM's. One table load a byte, not three compares.
    bool string(std::string_view *out) {
        if (!take('"')) {
            return false;
        }
        const char *start = p_;
        while (p_ < end_ && kPlainByte[static_cast<unsigned char>(*p_)]) {
            ++p_;
        }
        if (p_ == end_ || *p_ != '"') {
            return false;
        }
        *out = std::string_view(start, static_cast<std::size_t>(p_ - start));
        ++p_;
        return true;
    }

    // JSON's unsigned integers: "0" or no leading zero. What would overflow
    // (the DOM makes it a float), a fraction or an exponent: the DOM's.
    bool number(std::uint64_t *out) {
        const char *start = p_;
        while (p_ < end_ && digit(*p_)) {
            ++p_;
        }
        if (p_ == start || (*start == '0' && p_ - start > 1) ||
            std::from_chars(start, p_, *out).ec != std::errc()) {
            return false;
        }
        return p_ == end_ || (*p_ != '.' && *p_ != 'e' && *p_ != 'E');
    }

    bool string_array(FlatValue *v) {
        v->kind = FlatValue::Kind::Array;
        v->first = static_cast<std::uint32_t>(out_->elements.size());
        skip_space();
        if (take(']')) {
            return true;
        }
        do {
            skip_space();
            FlatValue &e = out_->elements.emplace_back();
            e.kind = FlatValue::Kind::String;
            if (!string(&e.text)) {
                return false;
            }
            ++v->count;
            skip_space();
        } while (take(','));
        return take(']');
    }

    bool value(FlatValue *v) {
        if (p_ == end_) {
            return false;
        }
        switch (*p_) {
            case '"':
                v->kind = FlatValue::Kind::String;
                return string(&v->text);
            case '[':
                ++p_;
                return string_array(v);
            case 't':
            case 'f':
                v->kind = FlatValue::Kind::Bool;
                v->boolean = *p_ == 't';
                return word(v->boolean ? "true" : "false");
            case 'n':
                v->kind = FlatValue::Kind::Null;
                return word("null");
            default:
                v->kind = FlatValue::Kind::Unsigned;
                return number(&v->number);
        }
    }

    const char *p_;
    const char *end_;
    FlatObject *out_;
};

FlatValue dom_value(const nlohmann::json &v) {
    FlatValue out;
    switch (v.type()) {
        case nlohmann::json::value_t::boolean:
            out.kind = FlatValue::Kind::Bool;
            out.boolean = v.get<bool>();
            break;
        case nlohmann::json::value_t::number_unsigned:
            out.kind = FlatValue::Kind::Unsigned;
            out.number = v.get<std::uint64_t>();
            break;
        case nlohmann::json::value_t::number_integer:
            out.kind = FlatValue::Kind::Integer;
            out.number = static_cast<std::uint64_t>(v.get<std::int64_t>());
            break;
        case nlohmann::json::value_t::number_float:
            out.kind = FlatValue::Kind::Float;
            break;
        case nlohmann::json::value_t::string:
            out.kind = FlatValue::Kind::String;
            out.text = v.get_ref<const std::string &>();
            break;
        case nlohmann::json::value_t::array:
            out.kind = FlatValue::Kind::Array;
            break;
        case nlohmann::json::value_t::object:
            out.kind = FlatValue::Kind::Object;
            out.object = &v;
            break;
        default:  // null, discarded, binary (never parsed from text)
            break;
    }
    return out;
}

}  // namespace

bool read_flat_object(std::string_view text, FlatObject *out) {
    out->clear();
    return FlatReader(text, out).object();
}

void read_dom_object(const nlohmann::json &j, FlatObject *out) {
    out->clear();
    for (auto it = j.begin(); it != j.end(); ++it) {
        const nlohmann::json &v = it.value();
        FlatValue &fv = out->add(it.key());  // a key of j's own map
        fv = dom_value(v);
        if (fv.kind == FlatValue::Kind::Array) {
            fv.first = static_cast<std::uint32_t>(out->elements.size());
            for (const auto &e : v) {
                out->elements.push_back(dom_value(e));
            }
            fv.count = static_cast<std::uint32_t>(v.size());
        }
    }
}

}  // namespace lockwatch::engine
