// Tokens -> syntax tree, with Jinja2's grammar and operator precedence (lowest first): inline if, or, and, not,
// comparisons and in / not in, + -, ~, * / // %, **, unary - +, then postfix .attr [item] [a:b:c] (call) and
// | filter / is test. Statements: if/elif/else, for (targets, inline filter, else), set (also ns.attr and block
// set), macro, break/continue and Hugging Face's generation block. Anything else is refused with its position.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "g4/text/jinja/ast.hpp"
#include "g4/text/jinja/lexer.hpp"

namespace g4::jinja {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body ParseTemplate() {
    std::string end;  // stays empty: the top level ends only with the template
    return ParseBody({}, &end);
  }

 private:
  using TK = Token::Kind;

  // Counts nesting (of blocks, parentheses, unary operators) so that hostile input cannot exhaust the stack.
  struct Nest {
    explicit Nest(Parser* p) : p(p) {
      if (++p->nesting_ > kMaxTreeDepth) FailAt(p->Peek().at, "template nested too deeply");
    }
    ~Nest() { --p->nesting_; }
    Parser* p;
  };

  const Token& Peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& Next() {
    const Token& t = Peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  bool IsOp(std::string_view op, size_t ahead = 0) const { return Peek(ahead).kind == TK::kOp && Peek(ahead).text == op; }
  bool IsName(std::string_view name, size_t ahead = 0) const {
    return Peek(ahead).kind == TK::kName && Peek(ahead).text == name;
  }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }
  void ExpectOp(std::string_view op) {
    if (!SkipOp(op)) FailAt(Peek().at, "expected '" + std::string(op) + "', got " + Describe(Peek()));
  }
  std::string ExpectName() {
    if (Peek().kind != TK::kName) FailAt(Peek().at, "expected a name, got " + Describe(Peek()));
    return Next().text;
  }
  void ExpectBlockEnd() {
    if (Peek().kind != TK::kBlockEnd) FailAt(Peek().at, "expected '%}', got " + Describe(Peek()));
    Next();
  }
  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case TK::kEof: return "the end of the template";
      case TK::kBlockEnd: return "'%}'";
      case TK::kVariableEnd: return "'}}'";
      case TK::kData: return "text";
      default: return "'" + t.text + "'";
    }
  }

  static ExprPtr Make(Expr::Kind kind, Position at, std::vector<ExprPtr> children = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->at = at;
    e->children = std::move(children);
    e->depth = 1;
    for (const ExprPtr& c : e->children)
      if (c) e->depth = std::max(e->depth, c->depth + 1);
    if (e->depth > kMaxTreeDepth) FailAt(at, "expression nested too deeply");
    return e;
  }
  static void AddKwargDepth(Expr& e) {
    for (const auto& [k, v] : e.kwargs) e.depth = std::max(e.depth, v->depth + 1);
    if (e.depth > kMaxTreeDepth) FailAt(e.at, "expression nested too deeply");
  }

  // ---- statements

  // Statements until one of the block tags in `stops` (or the end when stops is empty); *end gets its name.
  Body ParseBody(const std::vector<std::string_view>& stops, std::string* end) {
    Nest nest(this);
    Body body;
    for (;;) {
      const Token& t = Peek();
      if (t.kind == TK::kEof) {
        if (!stops.empty()) FailAt(t.at, "unexpected end of template, expected '" + std::string(stops[0]) + "'");
        *end = "";
        return body;
      }
      if (t.kind == TK::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->at = t.at;
        s->text = Next().text;
        body.push_back(std::move(s));
      } else if (t.kind == TK::kVariableBegin) {
        Next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kPrint;
        s->at = t.at;
        s->expr = ParseExpression();
        if (Peek().kind != TK::kVariableEnd) FailAt(Peek().at, "expected '}}', got " + Describe(Peek()));
        Next();
        body.push_back(std::move(s));
      } else if (t.kind == TK::kBlockBegin) {
        const Token& name = Peek(1);
        if (name.kind != TK::kName) FailAt(name.at, "expected a statement name, got " + Describe(name));
        for (const std::string_view stop : stops) {
          if (name.text == stop) {
            Next();
            Next();
            *end = name.text;
            return body;
          }
        }
        Next();
        body.push_back(ParseStatement());
      } else {
        FailAt(t.at, "unexpected " + Describe(t));
      }
    }
  }

  StmtPtr ParseStatement() {
    const Token& head = Next();
    auto s = std::make_unique<Stmt>();
    s->at = head.at;
    const std::string& name = head.text;
    std::string end;
    if (name == "if") {
      s->kind = Stmt::Kind::kIf;
      ExprPtr cond = ParseExpression();
      for (;;) {
        ExpectBlockEnd();
        Body body = ParseBody({"elif", "else", "endif"}, &end);
        s->branches.emplace_back(std::move(cond), std::move(body));
        if (end == "endif") break;
        if (end == "else") {
          ExpectBlockEnd();
          s->branches.emplace_back(nullptr, ParseBody({"endif"}, &end));
          break;
        }
        cond = ParseExpression();
      }
    } else if (name == "for") {
      s->kind = Stmt::Kind::kFor;
      do s->targets.push_back(ExpectName());
      while (SkipOp(","));
      if (!SkipName("in")) FailAt(Peek().at, "expected 'in' in the for loop, got " + Describe(Peek()));
      s->expr = ParseTuple(/*with_condition=*/false);
      if (SkipName("if")) s->filter = ParseExpression();
      if (IsName("recursive")) FailAt(Peek().at, "recursive for loops are not supported");
      ExpectBlockEnd();
      s->body = ParseBody({"else", "endfor"}, &end);
      s->uses_loop = Mentions(s->body, "loop");
      if (end == "else") {
        ExpectBlockEnd();
        s->else_body = ParseBody({"endfor"}, &end);
      }
    } else if (name == "set") {
      s->targets.push_back(ExpectName());
      if (SkipOp(".")) {
        s->attribute = ExpectName();
      } else {
        while (SkipOp(",")) s->targets.push_back(ExpectName());
      }
      if (SkipOp("=")) {
        s->kind = Stmt::Kind::kSet;
        s->expr = ParseTuple(/*with_condition=*/true);
      } else {
        if (s->targets.size() != 1 || !s->attribute.empty()) FailAt(Peek().at, "expected '='");
        s->kind = Stmt::Kind::kSetBlock;
        ExpectBlockEnd();
        s->body = ParseBody({"endset"}, &end);
      }
    } else if (name == "macro") {
      s->kind = Stmt::Kind::kMacro;
      s->name = ExpectName();
      ExpectOp("(");
      while (!SkipOp(")")) {
        if (!s->params.empty()) ExpectOp(",");
        if (SkipOp(")")) break;
        std::string param = ExpectName();
        ExprPtr fallback = SkipOp("=") ? ParseExpression() : nullptr;
        s->params.emplace_back(std::move(param), std::move(fallback));
      }
      ExpectBlockEnd();
      s->body = ParseBody({"endmacro"}, &end);
      if (Peek().kind == TK::kName) Next();  // {% endmacro name %}
    } else if (name == "break" || name == "continue") {
      s->kind = name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
    } else if (name == "generation") {
      s->kind = Stmt::Kind::kGeneration;
      ExpectBlockEnd();
      s->body = ParseBody({"endgeneration"}, &end);
    } else {
      FailAt(head.at, "unsupported statement '" + name + "'");
    }
    ExpectBlockEnd();
    return s;
  }

  // ---- expressions

  // An expression, or several separated by commas (a tuple, which here is a list).
  ExprPtr ParseTuple(bool with_condition) {
    const Position at = Peek().at;
    ExprPtr first = with_condition ? ParseExpression() : ParseOr();
    if (!IsOp(",")) return first;
    std::vector<ExprPtr> items;
    items.push_back(std::move(first));
    while (SkipOp(",")) items.push_back(with_condition ? ParseExpression() : ParseOr());
    ExprPtr tuple = Make(Expr::Kind::kList, at, std::move(items));
    tuple->negated = true;
    return tuple;
  }

  ExprPtr ParseExpression() {
    Nest nest(this);
    ExprPtr value = ParseOr();
    while (IsName("if")) {
      const Position at = Next().at;
      std::vector<ExprPtr> parts;
      parts.push_back(ParseOr());
      parts.push_back(std::move(value));
      if (SkipName("else")) parts.push_back(ParseExpression());
      value = Make(Expr::Kind::kCondition, at, std::move(parts));
    }
    return value;
  }

  ExprPtr Binary(std::string op, Position at, ExprPtr left, ExprPtr right) {
    std::vector<ExprPtr> c;
    c.push_back(std::move(left));
    c.push_back(std::move(right));
    ExprPtr e = Make(Expr::Kind::kBinary, at, std::move(c));
    e->name = std::move(op);
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr left = ParseAnd();
    while (IsName("or")) {
      const Position at = Next().at;
      left = Binary("or", at, std::move(left), ParseAnd());
    }
    return left;
  }
  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (IsName("and")) {
      const Position at = Next().at;
      left = Binary("and", at, std::move(left), ParseNot());
    }
    return left;
  }
  ExprPtr ParseNot() {
    if (IsName("not")) {
      Nest nest(this);
      const Position at = Next().at;
      std::vector<ExprPtr> c;
      c.push_back(ParseNot());
      ExprPtr e = Make(Expr::Kind::kUnary, at, std::move(c));
      e->name = "not";
      return e;
    }
    return ParseCompare();
  }
  ExprPtr ParseCompare() {
    const Position at = Peek().at;
    ExprPtr first = ParseMath1();
    std::vector<ExprPtr> operands;
    std::vector<std::string> ops;
    for (;;) {
      std::string op;
      if (Peek().kind == TK::kOp && (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" ||
                                     Peek().text == ">" || Peek().text == "<=" || Peek().text == ">=")) {
        op = Next().text;
      } else if (IsName("in")) {
        Next();
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        Next();
        Next();
        op = "not in";
      } else {
        break;
      }
      if (operands.empty()) operands.push_back(std::move(first));
      operands.push_back(ParseMath1());
      ops.push_back(std::move(op));
    }
    if (operands.empty()) return first;
    ExprPtr e = Make(Expr::Kind::kCompare, at, std::move(operands));
    e->ops = std::move(ops);
    return e;
  }
  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      const Token& op = Next();
      left = Binary(op.text, op.at, std::move(left), ParseConcat());
    }
    return left;
  }
  ExprPtr ParseConcat() {
    ExprPtr left = ParseMath2();
    while (IsOp("~")) {
      const Position at = Next().at;
      left = Binary("~", at, std::move(left), ParseMath2());
    }
    return left;
  }
  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const Token& op = Next();
      left = Binary(op.text, op.at, std::move(left), ParsePow());
    }
    return left;
  }
  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(true);
    while (IsOp("**")) {
      const Position at = Next().at;
      left = Binary("**", at, std::move(left), ParseUnary(true));
    }
    return left;
  }
  ExprPtr ParseUnary(bool with_filter) {
    Nest nest(this);
    ExprPtr e;
    if (IsOp("-") || IsOp("+")) {
      const Token& op = Next();
      std::vector<ExprPtr> c;
      c.push_back(ParseUnary(false));
      e = Make(Expr::Kind::kUnary, op.at, std::move(c));
      e->name = op.text;
    } else {
      e = ParsePostfix(ParsePrimary());
    }
    if (with_filter) return ParseFilters(std::move(e));
    return e;
  }

  ExprPtr ParsePrimary() {
    const Token& t = Peek();
    switch (t.kind) {
      case TK::kName: {
        Next();
        ExprPtr e = Make(Expr::Kind::kLiteral, t.at);
        if (t.text == "true" || t.text == "True") {
          e->literal = Value::Bool(true);
        } else if (t.text == "false" || t.text == "False") {
          e->literal = Value::Bool(false);
        } else if (t.text == "none" || t.text == "None") {
          e->literal = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        return e;
      }
      case TK::kString: {
        std::string s;
        while (Peek().kind == TK::kString) s += Next().text;  // adjacent literals join, as in Python
        ExprPtr e = Make(Expr::Kind::kLiteral, t.at);
        e->literal = Value::String(std::move(s));
        return e;
      }
      case TK::kInt:
      case TK::kFloat: {
        Next();
        ExprPtr e = Make(Expr::Kind::kLiteral, t.at);
        errno = 0;
        if (t.kind == TK::kInt) {
          const long long v = std::strtoll(t.text.c_str(), nullptr, 10);
          if (errno == ERANGE) FailAt(t.at, "integer literal out of range");
          e->literal = Value::Int(v);
        } else {
          e->literal = Value::Float(std::strtod(t.text.c_str(), nullptr));
        }
        return e;
      }
      case TK::kOp:
        if (t.text == "(") {
          Next();
          if (SkipOp(")")) {
            ExprPtr empty = Make(Expr::Kind::kList, t.at);
            empty->negated = true;
            return empty;
          }
          ExprPtr e = ParseTuple(true);
          ExpectOp(")");
          return e;
        }
        if (t.text == "[") {
          Next();
          std::vector<ExprPtr> items;
          while (!SkipOp("]")) {
            if (!items.empty()) ExpectOp(",");
            if (SkipOp("]")) break;
            items.push_back(ParseExpression());
          }
          return Make(Expr::Kind::kList, t.at, std::move(items));
        }
        if (t.text == "{") {
          Next();
          std::vector<ExprPtr> items;
          while (!SkipOp("}")) {
            if (!items.empty()) ExpectOp(",");
            if (SkipOp("}")) break;
            items.push_back(ParseExpression());
            ExpectOp(":");
            items.push_back(ParseExpression());
          }
          return Make(Expr::Kind::kDict, t.at, std::move(items));
        }
        break;
      default:
        break;
    }
    FailAt(t.at, "unexpected " + Describe(t) + " in an expression");
  }

  // Arguments of a call, filter or test after its "(": positional then keyword (name=value).
  void ParseArguments(Expr& e) {
    while (!SkipOp(")")) {
      if (e.children.size() > 1 || !e.kwargs.empty()) ExpectOp(",");
      if (SkipOp(")")) break;
      if (Peek().kind == TK::kName && IsOp("=", 1)) {
        std::string key = Next().text;
        Next();
        e.kwargs.emplace_back(std::move(key), ParseExpression());
      } else {
        if (!e.kwargs.empty()) FailAt(Peek().at, "positional argument after keyword argument");
        ExprPtr arg = ParseExpression();
        e.depth = std::max(e.depth, arg->depth + 1);
        e.children.push_back(std::move(arg));
      }
    }
    AddKwargDepth(e);
  }

  ExprPtr ParsePostfix(ExprPtr e) {
    for (;;) {
      const Position at = Peek().at;
      if (SkipOp(".")) {
        std::vector<ExprPtr> c;
        c.push_back(std::move(e));
        if (Peek().kind == TK::kInt) {  // foo.0 is foo[0]
          ExprPtr index = Make(Expr::Kind::kLiteral, Peek().at);
          index->literal = Value::Int(std::strtoll(Next().text.c_str(), nullptr, 10));
          c.push_back(std::move(index));
          e = Make(Expr::Kind::kItem, at, std::move(c));
        } else {
          std::string attr = ExpectName();
          e = Make(Expr::Kind::kAttribute, at, std::move(c));
          e->name = std::move(attr);
        }
      } else if (SkipOp("[")) {
        e = ParseSubscript(std::move(e), at);
      } else if (SkipOp("(")) {
        std::vector<ExprPtr> c;
        c.push_back(std::move(e));
        e = Make(Expr::Kind::kCall, at, std::move(c));
        ParseArguments(*e);
      } else {
        return e;
      }
    }
  }

  ExprPtr ParseSubscript(ExprPtr object, Position at) {
    std::vector<ExprPtr> c;
    c.push_back(std::move(object));
    ExprPtr first = IsOp(":") ? nullptr : ParseExpression();
    if (!IsOp(":")) {
      ExpectOp("]");
      c.push_back(std::move(first));
      return Make(Expr::Kind::kItem, at, std::move(c));
    }
    c.push_back(std::move(first));
    for (int part = 0; part < 2 && SkipOp(":"); ++part)
      c.push_back(IsOp(":") || IsOp("]") ? nullptr : ParseExpression());
    c.resize(4);
    ExpectOp("]");
    return Make(Expr::Kind::kSlice, at, std::move(c));
  }

  ExprPtr ParseFilters(ExprPtr e) {
    for (;;) {
      const Position at = Peek().at;
      if (SkipOp("|")) {
        std::vector<ExprPtr> c;
        c.push_back(std::move(e));
        std::string name = ExpectName();
        e = Make(Expr::Kind::kFilter, at, std::move(c));
        e->name = std::move(name);
        if (SkipOp("(")) ParseArguments(*e);
        e = ParsePostfix(std::move(e));
      } else if (SkipName("is")) {
        std::vector<ExprPtr> c;
        c.push_back(std::move(e));
        const bool negated = SkipName("not");
        std::string name = ExpectName();
        e = Make(Expr::Kind::kTest, at, std::move(c));
        e->name = std::move(name);
        e->negated = negated;
        if (SkipOp("(")) {
          ParseArguments(*e);
        } else if (StartsTestArgument()) {  // is equalto 5, is divisibleby 3
          ExprPtr arg = ParsePostfix(ParsePrimary());
          e->depth = std::max(e->depth, arg->depth + 1);
          e->children.push_back(std::move(arg));
        }
      } else {
        return e;
      }
    }
  }
  bool StartsTestArgument() const {
    const Token& t = Peek();
    if (t.kind == TK::kName)
      return t.text != "else" && t.text != "or" && t.text != "and" && t.text != "if" && t.text != "in" &&
             t.text != "is" && t.text != "not";
    return t.kind == TK::kString || t.kind == TK::kInt || t.kind == TK::kFloat || IsOp("[") || IsOp("{");
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int nesting_ = 0;
};

}  // namespace g4::jinja
