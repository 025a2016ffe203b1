// The syntax tree of a parsed template: expressions and statements, each with the position it came from so that
// runtime errors name the template's line and column. Trees are at most kMaxTreeDepth deep (the parser refuses
// deeper ones), so evaluating and destroying them recurses a bounded number of times.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "g4/text/jinja/lexer.hpp"
#include "g4/text/jinja/value.hpp"

namespace g4::jinja {

inline constexpr int kMaxTreeDepth = 200;

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // literal
    kName,       // name
    kList,       // children: items (a tuple when `negated`, which only changes how it prints)
    kDict,       // children: key, value, key, value, ...
    kAttribute,  // children[0].name
    kItem,       // children[0][children[1]]
    kSlice,      // children[0][children[1]:children[2]:children[3]], absent bounds null
    kCall,       // children[0](children[1..], kwargs)
    kFilter,     // children[0] | name(children[1..], kwargs)
    kTest,       // children[0] is [not] name(children[1..], kwargs)
    kUnary,      // name ("-", "+", "not") children[0]
    kBinary,     // children[0] name children[1]: + - * / // % ** ~ and or
    kCompare,    // children[0] ops[0] children[1] ops[1] children[2] ... (chained as in Python)
    kCondition,  // children[1] if children[0] else children[2] (absent else: undefined)
  };
  Kind kind;
  Position at;
  Value literal;
  std::string name;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
  int depth = 1;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,        // text
    kPrint,       // {{ expr }}
    kIf,          // branches: (condition, body); a null condition is the else branch
    kFor,         // for targets in expr [if filter]: body [else: else_body]
    kSet,         // set targets = expr, or set targets[0].attribute = expr
    kSetBlock,    // set targets[0] %}body{% endset
    kMacro,       // macro name(params) body
    kBreak,
    kContinue,
    kGeneration,  // Hugging Face's {% generation %}: renders its body unchanged
  };
  Kind kind;
  Position at;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::string> targets;
  std::string attribute;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default null when none
  bool uses_loop = false;  // kFor: the body names `loop` (else the interpreter need not build it each iteration)
};

// Whether an expression or statements mention `name` as a variable anywhere inside.
inline bool Mentions(const Expr& e, std::string_view name) {
  if (e.kind == Expr::Kind::kName && e.name == name) return true;
  for (const ExprPtr& c : e.children)
    if (c && Mentions(*c, name)) return true;
  for (const auto& [k, v] : e.kwargs)
    if (Mentions(*v, name)) return true;
  return false;
}
inline bool Mentions(const std::vector<StmtPtr>& body, std::string_view name) {
  for (const StmtPtr& s : body) {
    for (const Expr* e : {s->expr.get(), s->filter.get()})
      if (e && Mentions(*e, name)) return true;
    for (const auto& [cond, branch] : s->branches)
      if ((cond && Mentions(*cond, name)) || Mentions(branch, name)) return true;
    for (const auto& [k, v] : s->params)
      if (v && Mentions(*v, name)) return true;
    if (Mentions(s->body, name) || Mentions(s->else_body, name)) return true;
  }
  return false;
}

}  // namespace g4::jinja
