// Runs a parsed template. Scoping follows Jinja2: a for loop's iteration and a macro call open a scope (so `set`
// inside a loop does not leak out, nor into the next iteration, hence namespace()), if blocks do not; a macro sees its parameters, then the template's
// top-level variables. Globals: range, namespace, raise_exception (Hugging Face's).
//
// Hostile templates meet limits, each an error at the position that crossed it: the output (and any string built
// on the way) stays under Limits::max_output_bytes, all loops together run at most max_loop_iterations times, and
// evaluation recursion (macro calls included) stops at max_recursion levels.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "g4/text/jinja/ast.hpp"
#include "g4/text/jinja/builtins.hpp"
#include "g4/text/jinja/operators.hpp"
#include "g4/text/jinja/python_str.hpp"
#include "g4/text/jinja/value.hpp"

namespace g4::jinja {

struct Limits {
  size_t max_output_bytes = size_t{64} << 20;
  // Gemma 4's official template scans back over the messages for each message (n^2 / 2 iterations): 10M allow
  // ~4,500 messages, rendered in ~5 s.
  uint64_t max_loop_iterations = 10'000'000;
  int max_recursion = 1000;
};

class Interpreter {
 public:
  explicit Interpreter(Limits limits) : limits_(limits) {}

  std::string Render(const Body& body, std::vector<std::pair<std::string, Value>> globals) {
    frames_.assign(1, Frame{});
    for (auto& [k, v] : globals) Assign(k, std::move(v));
    scope_base_ = 0;
    std::string out;
    if (ExecBody(body, out) != Flow::kNormal) FailAt(body.empty() ? Position{} : body.front()->at, "break or continue outside a loop");
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  // Variables of a scope, searched linearly: scopes hold a handful, and loops clear theirs every iteration.
  // kMaxVariables bounds the search against templates that set thousands of names.
  static constexpr size_t kMaxVariables = 10000;
  struct Frame {
    std::vector<std::pair<std::string, Value>> vars;
  };
  // Counts recursion; every Exec/Eval/macro call holds one.
  struct Depth {
    Depth(Interpreter* in, Position at) : in(in) {
      if (++in->depth_ > in->limits_.max_recursion)
        FailAt(at, "recursion deeper than " + std::to_string(in->limits_.max_recursion) + " levels");
    }
    ~Depth() { --in->depth_; }
    Interpreter* in;
  };

  BuiltinSite Site(Position at) const { return {at, limits_.max_output_bytes}; }

  // ---- variables

  Value Lookup(const std::string& name) const {
    for (size_t f = frames_.size(); f-- > scope_base_;)
      for (const auto& [k, v] : frames_[f].vars)
        if (k == name) return v;
    if (scope_base_ > 0)
      for (const auto& [k, v] : frames_[0].vars)
        if (k == name) return v;
    return Global(name);
  }
  void Assign(const std::string& name, Value v) {
    auto& vars = frames_.back().vars;
    for (auto& [k, old] : vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    Require(vars.size() < kMaxVariables, "chat template", "more than " + std::to_string(kMaxVariables) + " variables in one scope");
    vars.emplace_back(name, std::move(v));
  }

  static Value Global(const std::string& name) {
    if (name == "range") return Value::Function("range", Range);
    if (name == "namespace") return Value::Function("namespace", Namespace);
    if (name == "raise_exception")
      return Value::Function("raise_exception", [](Call& c) -> Value {
        Fail("chat template", c.where + ": template raised an exception: " + c.Arg(0, "message").Str());
      });
    return Value::Undefined(name);
  }

  static Value Range(Call& c) {
    std::vector<int64_t> bounds;
    for (const Value& a : c.args) {
      if (!a.is_number() || a.is_float()) Fail("chat template", c.where + ": range() takes integers, not " + a.TypeName());
      bounds.push_back(a.as_int());
    }
    if (bounds.empty() || bounds.size() > 3) Fail("chat template", c.where + ": range() takes 1 to 3 arguments");
    const int64_t start = bounds.size() == 1 ? 0 : bounds[0];
    const int64_t stop = bounds.size() == 1 ? bounds[0] : bounds[1];
    const int64_t step = bounds.size() == 3 ? bounds[2] : 1;
    if (step == 0) Fail("chat template", c.where + ": range() step must not be zero");
    const __int128 span = step > 0 ? __int128(stop) - start : __int128(start) - stop;
    const __int128 n = span <= 0 ? 0 : (span + (step > 0 ? step : -__int128(step)) - 1) / (step > 0 ? step : -__int128(step));
    if (n > (1 << 22)) Fail("chat template", c.where + ": range() of more than 4194304 numbers");
    std::vector<Value> items;
    items.reserve(static_cast<size_t>(n));
    for (__int128 i = 0; i < n; ++i) items.push_back(Value::Int(static_cast<int64_t>(start + i * step)));
    return Value::MakeList(std::move(items));
  }

  static Value Namespace(Call& c) {
    std::vector<std::pair<std::string, Value>> attrs;
    for (const Value& a : c.args) {
      if (!a.is_dict()) Fail("chat template", c.where + ": namespace() takes a dict or keyword arguments");
      attrs.insert(attrs.end(), a.entries().begin(), a.entries().end());
    }
    attrs.insert(attrs.end(), c.kwargs.begin(), c.kwargs.end());
    for (const auto& [k, v] : attrs)
      if (v.ContainsNamespace()) Fail("chat template", c.where + ": a namespace cannot be stored in a namespace");
    return Value::MakeNamespace(std::move(attrs));
  }

  // ---- statements

  void Write(std::string& out, std::string_view text, Position at) const {
    CheckLength(out.size() + text.size(), limits_.max_output_bytes, at);
    out += text;
  }

  Flow ExecBody(const Body& body, std::string& out) {
    for (const StmtPtr& s : body)
      if (const Flow f = Exec(*s, out); f != Flow::kNormal) return f;
    return Flow::kNormal;
  }

  Flow Exec(const Stmt& s, std::string& out) {
    const Depth depth(this, s.at);
    switch (s.kind) {
      case Stmt::Kind::kText:
        Write(out, s.text, s.at);
        return Flow::kNormal;
      case Stmt::Kind::kPrint:
        Write(out, Eval(*s.expr).Str(), s.at);
        return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (const auto& [cond, body] : s.branches)
          if (!cond || Eval(*cond).Truthy()) return ExecBody(body, out);
        return Flow::kNormal;
      case Stmt::Kind::kFor:
        return ExecFor(s, out);
      case Stmt::Kind::kSet:
        ExecSet(s, Eval(*s.expr));
        return Flow::kNormal;
      case Stmt::Kind::kSetBlock: {
        std::string text;
        if (ExecBody(s.body, text) != Flow::kNormal) FailAt(s.at, "break or continue outside a loop");
        Assign(s.targets[0], Value::String(std::move(text)));
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro:
        Assign(s.name, Value::Function(s.name, [this, &s](Call& c) { return CallMacro(s, c); }));
        return Flow::kNormal;
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
      case Stmt::Kind::kGeneration:
        return ExecBody(s.body, out);
    }
    return Flow::kNormal;
  }

  void ExecSet(const Stmt& s, Value v) {
    if (!s.attribute.empty()) {
      Value target = Lookup(s.targets[0]);
      if (!target.is_namespace())
        FailAt(s.at, "cannot assign attribute '" + s.attribute + "' on " + target.TypeName() + " (only on a namespace)");
      if (v.ContainsNamespace()) FailAt(s.at, "a namespace cannot be stored in a namespace");
      target.SetAttribute(s.attribute, std::move(v));
    } else if (s.targets.size() == 1) {
      Assign(s.targets[0], std::move(v));
    } else {
      Unpack(s.targets, v, s.at, [&](const std::string& name, Value x) { Assign(name, std::move(x)); });
    }
  }

  template <typename Bind>
  static void Unpack(const std::vector<std::string>& targets, const Value& v, Position at, Bind bind) {
    if (!v.is_list() || v.items().size() != targets.size())
      FailAt(at, "cannot unpack " + v.TypeName() + " into " + std::to_string(targets.size()) + " names");
    for (size_t i = 0; i < targets.size(); ++i) bind(targets[i], v.items()[i]);
  }

  std::vector<Value> LoopItems(const Value& v, Position at) const {
    if (v.is_none() || v.is_number() || v.is_callable() || v.is_namespace())
      FailAt(at, "'" + v.TypeName() + "' object is not iterable");
    return builtin_detail::Iterate(v, Site(at));
  }

  void CountIteration(Position at) {
    if (++iterations_ > limits_.max_loop_iterations)
      FailAt(at, "loops ran more than " + std::to_string(limits_.max_loop_iterations) + " iterations");
  }

  Flow ExecFor(const Stmt& s, std::string& out) {
    std::vector<Value> items = LoopItems(Eval(*s.expr), s.at);
    frames_.push_back({});
    const auto bind = [&](const Value& item) {
      if (s.targets.size() == 1)
        Assign(s.targets[0], item);
      else
        Unpack(s.targets, item, s.at, [&](const std::string& name, Value x) { Assign(name, std::move(x)); });
    };
    if (s.filter) {
      std::vector<Value> kept;
      for (const Value& item : items) {
        CountIteration(s.at);
        bind(item);
        if (Eval(*s.filter).Truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      CountIteration(s.at);
      frames_.back().vars.clear();  // each iteration starts afresh: `set` in the body lasts one iteration
      bind(items[static_cast<size_t>(i)]);
      if (s.uses_loop) Assign("loop", LoopInfo(items, i));
      if (ExecBody(s.body, out) == Flow::kBreak) break;
    }
    frames_.pop_back();
    if (n == 0) return ExecBody(s.else_body, out);
    return Flow::kNormal;
  }

  // The `loop` variable of iteration i.
  static Value LoopInfo(const std::vector<Value>& items, int64_t i) {
    const auto n = static_cast<int64_t>(items.size());
    std::vector<std::pair<std::string, Value>> loop = {
        {"index", Value::Int(i + 1)},      {"index0", Value::Int(i)},        {"revindex", Value::Int(n - i)},
        {"revindex0", Value::Int(n - i - 1)}, {"first", Value::Bool(i == 0)}, {"last", Value::Bool(i == n - 1)},
        {"length", Value::Int(n)},         {"depth", Value::Int(1)},         {"depth0", Value::Int(0)}};
    if (i > 0) loop.emplace_back("previtem", items[static_cast<size_t>(i - 1)]);
    if (i + 1 < n) loop.emplace_back("nextitem", items[static_cast<size_t>(i + 1)]);
    loop.emplace_back("cycle", Value::Function("cycle", [i](Call& c) -> Value {
                        if (c.args.empty()) Fail("chat template", c.where + ": loop.cycle() needs arguments");
                        return c.args[static_cast<size_t>(i) % c.args.size()];
                      }));
    return Value::MakeDict(std::move(loop));
  }

  Value CallMacro(const Stmt& macro, Call& c) {
    const Depth depth(this, macro.at);
    if (c.args.size() > macro.params.size())
      Fail("chat template", c.where + ": macro '" + macro.name + "' takes " + std::to_string(macro.params.size()) +
                                " arguments, got " + std::to_string(c.args.size()));
    for (const auto& [k, v] : c.kwargs) {
      bool known = false;
      for (const auto& p : macro.params) known = known || p.first == k;
      if (!known) Fail("chat template", c.where + ": macro '" + macro.name + "' has no parameter '" + k + "'");
    }
    const size_t saved_base = scope_base_;
    frames_.push_back({});
    scope_base_ = frames_.size() - 1;
    std::string out;
    try {
      for (size_t i = 0; i < macro.params.size(); ++i) {
        const auto& [name, fallback] = macro.params[i];
        Value v = c.Arg(i, name);
        if (v.is_undefined() && i >= c.args.size()) v = fallback ? Eval(*fallback) : Value::Undefined(name);
        Assign(name, std::move(v));
      }
      if (ExecBody(macro.body, out) != Flow::kNormal) FailAt(macro.at, "break or continue outside a loop");
    } catch (...) {
      frames_.resize(scope_base_);
      scope_base_ = saved_base;
      throw;
    }
    frames_.pop_back();
    scope_base_ = saved_base;
    return Value::String(std::move(out));
  }

  // ---- expressions

  Value Eval(const Expr& e) {
    const Depth depth(this, e.at);
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.literal;
      case Expr::Kind::kName:
        return Lookup(e.name);
      case Expr::Kind::kList: {
        std::vector<Value> items;
        for (const ExprPtr& c : e.children) items.push_back(Eval(*c));
        return Value::MakeList(std::move(items), /*tuple=*/e.negated);
      }
      case Expr::Kind::kDict: {
        std::vector<std::pair<std::string, Value>> items;
        std::unordered_map<std::string, size_t> index;  // a repeated key keeps its first place, takes the last value
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          const Value key = Eval(*e.children[i]);
          if (!key.is_string()) FailAt(e.children[i]->at, "dict keys must be strings here, not " + key.TypeName());
          Value v = Eval(*e.children[i + 1]);
          if (const auto [it, fresh] = index.emplace(key.as_string(), items.size()); fresh)
            items.emplace_back(key.as_string(), std::move(v));
          else
            items[it->second].second = std::move(v);
        }
        return Value::MakeDict(std::move(items));
      }
      case Expr::Kind::kAttribute:
        return GetAttribute(Eval(*e.children[0]), e.name, e.at);
      case Expr::Kind::kItem:
        return GetItem(Eval(*e.children[0]), Eval(*e.children[1]), e.at);
      case Expr::Kind::kSlice:
        return EvalSlice(e);
      case Expr::Kind::kCall:
        return EvalCall(e);
      case Expr::Kind::kFilter: {
        Value operand = Eval(*e.children[0]);
        Call call = Arguments(e);
        return ApplyFilter(e.name, operand, call, Site(e.at));
      }
      case Expr::Kind::kTest: {
        Value operand = Eval(*e.children[0]);
        Call call = Arguments(e);
        return Value::Bool(ApplyTest(e.name, operand, call, Site(e.at)) != e.negated);
      }
      case Expr::Kind::kUnary: {
        const Value v = Eval(*e.children[0]);
        if (e.name == "not") return Value::Bool(!v.Truthy());
        if (v.is_undefined()) FailUndefined(v, e.at);
        if (e.name == "-") return Negate(v, e.at);
        if (!v.is_number()) FailAt(e.at, "bad operand type for unary +: '" + v.TypeName() + "'");
        return v.is_bool() ? Value::Int(v.as_int()) : v;
      }
      case Expr::Kind::kBinary: {
        Value left = Eval(*e.children[0]);
        if (e.name == "and") return left.Truthy() ? Eval(*e.children[1]) : left;
        if (e.name == "or") return left.Truthy() ? left : Eval(*e.children[1]);
        const Value right = Eval(*e.children[1]);
        if (e.name == "~") {
          std::string s = left.Str();
          s += right.Str();
          CheckLength(s.size(), limits_.max_output_bytes, e.at);
          return Value::String(std::move(s));
        }
        return Arithmetic(e.name, left, right, limits_.max_output_bytes, e.at);
      }
      case Expr::Kind::kCompare: {
        Value left = Eval(*e.children[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = Eval(*e.children[i + 1]);
          const std::string& op = e.ops[i];
          bool ok;
          if (op == "==") ok = Equal(left, right);
          else if (op == "!=") ok = !Equal(left, right);
          else if (op == "in") ok = Contains(right, left, e.at);
          else if (op == "not in") ok = !Contains(right, left, e.at);
          else {
            const int c = Compare(left, right, e.at);
            ok = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
          }
          if (!ok) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case Expr::Kind::kCondition:
        if (Eval(*e.children[0]).Truthy()) return Eval(*e.children[1]);
        return e.children.size() > 2 ? Eval(*e.children[2]) : Value::Undefined("inline if without else");
    }
    return Value();
  }

  Call Arguments(const Expr& e) {
    Call call;
    call.where = e.at.Text();
    for (size_t i = 1; i < e.children.size(); ++i) call.args.push_back(Eval(*e.children[i]));
    for (const auto& [k, v] : e.kwargs) call.kwargs.emplace_back(k, Eval(*v));
    return call;
  }

  Value EvalCall(const Expr& e) {
    const Expr& callee = *e.children[0];
    if (callee.kind == Expr::Kind::kAttribute) {
      const Value object = Eval(*callee.children[0]);
      Call call = Arguments(e);
      if (auto result = CallMethod(object, callee.name, call, Site(e.at))) return *std::move(result);
      return Invoke(GetAttribute(object, callee.name, callee.at), call, e.at);
    }
    const Value f = Eval(callee);
    Call call = Arguments(e);
    return Invoke(f, call, e.at);
  }

  Value Invoke(const Value& f, Call& call, Position at) {
    if (f.is_undefined()) FailAt(at, "'" + f.undefined_name() + "' is undefined (not a function)");
    if (!f.is_callable()) FailAt(at, "'" + f.TypeName() + "' object is not callable");
    return f.callable().fn(call);
  }

  static Value GetAttribute(const Value& object, const std::string& name, Position at) {
    if (object.is_undefined()) FailUndefined(object, at);
    if (object.is_dict() || object.is_namespace())
      if (const Value* v = object.Find(name)) return *v;
    return Value::Undefined(name);
  }

  static Value GetItem(const Value& object, const Value& key, Position at) {
    if (object.is_undefined()) FailUndefined(object, at);
    if (key.is_string() && (object.is_dict() || object.is_namespace())) return GetAttribute(object, key.as_string(), at);
    if ((object.is_list() || object.is_string()) && key.is_number() && !key.is_float()) {
      const std::vector<Value> items = object.is_list() ? object.items() : builtin_detail::Iterate(object, {at, 0});
      int64_t i = key.as_int();
      if (i < 0) i += static_cast<int64_t>(items.size());
      if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
    }
    return Value::Undefined(key.is_string() ? key.as_string() : key.Repr());
  }

  // Python's seq[start:stop:step] on a list or a string.
  Value EvalSlice(const Expr& e) {
    const Value object = Eval(*e.children[0]);
    if (object.is_undefined()) FailUndefined(object, e.at);
    if (!object.is_list() && !object.is_string()) FailAt(e.at, "'" + object.TypeName() + "' object is not subscriptable");
    const std::vector<Value> items = object.is_list() ? object.items() : builtin_detail::Iterate(object, Site(e.at));
    const auto n = static_cast<int64_t>(items.size());
    const auto bound = [&](const ExprPtr& x, const char* what) -> std::optional<int64_t> {
      if (!x) return std::nullopt;
      const Value v = Eval(*x);
      if (v.is_none()) return std::nullopt;
      if (!v.is_number() || v.is_float()) FailAt(e.at, std::string("slice ") + what + " must be an integer or None");
      return v.as_int();
    };
    const int64_t step = bound(e.children[3], "step").value_or(1);
    if (step == 0) FailAt(e.at, "slice step cannot be zero");
    const auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
      if (!v) return fallback;
      int64_t i = *v < 0 ? *v + n : *v;
      return step > 0 ? std::clamp<int64_t>(i, 0, n) : std::clamp<int64_t>(i, -1, n - 1);
    };
    const int64_t start = clamp(bound(e.children[1], "start"), step > 0 ? 0 : n - 1);
    const int64_t stop = clamp(bound(e.children[2], "stop"), step > 0 ? n : -1);
    std::vector<Value> out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(items[static_cast<size_t>(i)]);
    if (object.is_list()) return Value::MakeList(std::move(out));
    std::string s;
    for (const Value& c : out) s += c.as_string();
    return Value::String(std::move(s));
  }

  Limits limits_;
  std::vector<Frame> frames_;
  size_t scope_base_ = 0;  // a macro's own frame: lookups stop there, then go to frames_[0]
  int depth_ = 0;
  uint64_t iterations_ = 0;
};

}  // namespace g4::jinja
