#include "fcvm/cli/man.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/fs.hpp"

namespace fcvm::cli {
namespace {

// Text as roff reads it: backslashes and hyphens escaped, no line starting with a control
// character, paragraphs (blank lines) as .PP.
std::string roff(const std::string& text) {
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    line_start = c == '\n';
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  return out;
}

std::string paragraphs(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find('\n', start);
    auto line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    out += line.empty() ? std::string(".PP\n") : roff(line) + "\n";
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

bool visible(const CLI::App* sub) { return !sub->get_group().empty(); }
bool visible(const CLI::Option* opt) { return !opt->get_group().empty(); }

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

// "[OPTIONS] vm... name" from an app's positionals.
std::string synopsis(const CLI::App& app) {
  // A command that stops parsing at its first word (run, exec) spells its synopsis in its
  // description: "...: fcvm NAME SYNOPSIS".
  if (app.get_prefix_command()) {
    const auto& d = app.get_description();
    auto at = d.find(": fcvm " + app.get_name() + " ");
    if (at != std::string::npos) return d.substr(at + 8 + app.get_name().size());
  }
  std::string out = "[OPTIONS]";
  for (const auto* opt :
       app.get_options([](const CLI::Option* o) { return o->get_positional(); })) {
    auto name = upper(opt->get_name(true, false));
    if (opt->get_expected_max() > 1) name += "...";
    out += " " + (opt->get_required() ? name : "[" + name + "]");
  }
  if (app.get_prefix_command()) out += " [COMMAND [ARG...]]";
  return out;
}

std::string options_section(const CLI::App& app) {
  std::string out;
  for (const auto* opt : app.get_options()) {
    if (opt->get_positional() || !visible(opt)) continue;
    std::string names;
    for (const auto& s : opt->get_snames()) names += (names.empty() ? "-" : ", -") + s;
    for (const auto& l : opt->get_lnames()) names += (names.empty() ? "--" : ", --") + l;
    out += ".TP\n.B " + roff(names);
    if (opt->get_type_size() != 0 && !opt->get_type_name().empty()) {
      out += " \\fI" + roff(opt->get_type_name()) + "\\fR";
    }
    out += "\n" + roff(opt->get_description()) + "\n";
  }
  return out;
}

std::string arguments_section(const CLI::App& app) {
  std::string out;
  for (const auto* opt :
       app.get_options([](const CLI::Option* o) { return o->get_positional(); })) {
    out += ".TP\n.I " + roff(upper(opt->get_name(true, false))) + "\n" +
           roff(opt->get_description()) + "\n";
  }
  return out;
}

std::string command_page(const CLI::App& root, const CLI::App& cmd) {
  const auto name = cmd.get_name();
  std::string page = fmt::format(".TH FCVM\\-{} 1 \"\" \"fcvm {}\" \"fcvm manual\"\n",
                                 roff(upper(name)), FCVM_VERSION);
  page += ".SH NAME\nfcvm\\-" + roff(name) + " \\- " + roff(cmd.get_description()) + "\n";
  page += ".SH SYNOPSIS\n.B fcvm " + roff(name) + "\n";
  auto subs = cmd.get_subcommands([](const CLI::App* s) { return visible(s); });
  page += (subs.empty() ? roff(synopsis(cmd)) : std::string("COMMAND [OPTIONS]")) + "\n";
  page += ".SH DESCRIPTION\n" + paragraphs(cmd.get_description()) + "\n";
  if (!cmd.get_footer().empty()) page += ".PP\n" + paragraphs(cmd.get_footer());
  if (auto args = arguments_section(cmd); !args.empty()) page += ".SH ARGUMENTS\n" + args;
  if (auto opts = options_section(cmd); !opts.empty()) page += ".SH OPTIONS\n" + opts;
  if (!subs.empty()) {
    page += ".SH COMMANDS\n";
    for (const auto* sub : subs) {
      page += ".SS fcvm " + roff(name) + " " + roff(sub->get_name()) + " " + roff(synopsis(*sub)) +
              "\n" + paragraphs(sub->get_description());
      if (auto args = arguments_section(*sub); !args.empty()) page += args;
      if (auto opts = options_section(*sub); !opts.empty()) page += opts;
    }
  }
  page += ".SH EXIT STATUS\n" + paragraphs(root.get_footer());
  page += ".SH SEE ALSO\n.BR fcvm (1)\n";
  return page;
}

std::string main_page(const CLI::App& root) {
  std::string page = fmt::format(
      ".TH FCVM 1 \"\" \"fcvm {}\" \"fcvm manual\"\n.SH NAME\nfcvm \\- {}\n", FCVM_VERSION,
      roff(root.get_description().substr(root.get_description().find(':') + 2)));
  page += ".SH SYNOPSIS\n.B fcvm\n[OPTIONS] COMMAND [ARG...]\n";
  page += ".SH DESCRIPTION\n" + paragraphs(root.get_description()) + "\n";
  page += ".SH OPTIONS\n" + options_section(root);
  page += ".SH COMMANDS\n";
  std::string see_also;
  for (const auto* sub : root.get_subcommands([](const CLI::App* s) { return visible(s); })) {
    page +=
        ".TP\n.BR fcvm\\-" + roff(sub->get_name()) + " (1)\n" + roff(sub->get_description()) + "\n";
    see_also += (see_also.empty() ? "" : ",\n") + std::string(".BR fcvm\\-") +
                roff(sub->get_name()) + " (1)";
  }
  page += ".SH EXIT STATUS AND ENVIRONMENT\n" + paragraphs(root.get_footer());
  page += ".SH SEE ALSO\n" + see_also + "\n";
  return page;
}

}  // namespace

int write_man_pages(const CLI::App& app, const std::string& dir) {
  if (auto r = make_dirs(dir, 0755); !r) return report_error(r.error().wrap("man pages"));
  auto write = [&](const std::string& file, const std::string& text) {
    auto r = write_file_atomic(dir + "/" + file, text, 0644);
    if (!r) report_error(r.error().wrap("man pages"));
    return static_cast<bool>(r);
  };
  if (!write("fcvm.1", main_page(app))) return k_exit_failure;
  for (const auto* sub : app.get_subcommands([](const CLI::App* s) { return visible(s); })) {
    if (!write("fcvm-" + sub->get_name() + ".1", command_page(app, *sub))) return k_exit_failure;
  }
  return k_exit_ok;
}

}  // namespace fcvm::cli
