"""SQL and shell injection payloads in text bound for a tool: a prompt whose
words will end up in a SQL query or on a command line.

The rules look for payload *syntax*, not for keywords: a quote that closes a
string and then adds a tautology (``' OR '1'='1``), a statement stacked
after a quote or a semicolon (``'); DROP TABLE``), ``UNION SELECT`` padded
with ``NULL``s, a command chained after a shell separator (``; rm -rf /``,
``&& wget``), command substitution, a pipe into a shell, a reverse shell.
A question *about* SQL or the shell ("how do I write a UNION query?",
"what does rm -rf do?") names the keywords without that syntax and so
scores nothing.  The text is read as written and, when it holds
percent-escapes, URL-decoded as well; zero-width characters are dropped and
fullwidth letters folded first, so ``ＤＲＯＰ`` or ``DR\u200bOP`` read as DROP.

Each category's score combines its rules' weights (noisy-or); severity is
``high`` when a destructive rule matched (data or system destroyed, or the
host taken over: ``DROP``, ``rm -rf /``, ``xp_cmdshell``, reverse shells,
``curl | sh``), ``medium`` otherwise.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmline.gateway.safety import ScanContext, ScanResult, Severity
from llmline.guard.scanners._text import noisy_or, parse_options, strip_invisible

if TYPE_CHECKING:
    from llmline.guard.scanners import Embedder

__all__ = [
    "CATEGORIES",
    "RULES",
    "CodeInjectionOptions",
    "CodeInjectionScanner",
    "Rule",
    "create",
    "matched_rules",
]

SQL = "sql_injection"
SHELL = "shell_injection"
CATEGORIES = (SQL, SHELL)


@dataclass(frozen=True)
class Rule:
    """A payload shape: its category, how strong a sign it is, whether it
    destroys or takes over, and its (case-insensitive) pattern."""

    name: str
    category: str
    weight: float
    destructive: bool
    regex: re.Pattern[str]
    hints: tuple[str, ...]  # lower-case substrings, one of which the text must hold


def _rule(
    name: str,
    category: str,
    weight: float,
    hints: tuple[str, ...],
    pattern: str,
    *,
    destructive: bool = False,
) -> Rule:
    return Rule(name, category, weight, destructive, re.compile(pattern, re.IGNORECASE), hints)


_Q = r"['\"`]"  # a quote that closes the application's string
_GAP = r"(?:\s+|/\*[^*]{0,20}\*/)+"  # whitespace or an inline comment between keywords
# Shell separators that start a new command.  A backtick is not one here:
# Markdown quotes commands in backticks ("run `ls -la`"); backticks that
# substitute inside a word have their own rule.
_SEP = r"(?:;|&&|\|\||\$\()"
_SH = r"(?:/usr)?(?:/bin/)?(?:ba|z|k|da)?sh\b"

RULES: tuple[Rule, ...] = (
    # -- SQL -----------------------------------------------------------------
    _rule(
        "tautology",
        SQL,
        0.9,
        ("'", '"', "`"),
        _Q + r"\)*\s*(?:or|and|\|\||&&)\s+\(*\s*(?:(['\"]?)\w{0,20}\1\s*(?:=|<>|!=|like)\s*"
        r"['\"]?\w{0,20}|true\b|not\s+false\b)",
    ),
    _rule("numeric_tautology", SQL, 0.75, ("=",), r"\b\d+\s+or\s+(\d+)\s*=\s*\1\b"),
    _rule(
        "comment_truncation",
        SQL,
        0.6,
        ("--", "#", "/*"),
        r"(?m)\w" + _Q + r"\)*\s*(?:--|#|/\*|;\s*--)\s*$",
    ),
    _rule(
        "quoted_union_select",
        SQL,
        0.85,
        ("union",),
        r"(?:" + _Q + r"|\))\s*\)*" + _GAP + r"?union" + _GAP + r"(?:all" + _GAP + r")?select\b",
    ),
    _rule(
        "union_select_probe",
        SQL,
        0.9,
        ("union",),
        r"\bunion" + _GAP + r"(?:all" + _GAP + r")?select" + _GAP + r"(?:null|\d+|@@version|"
        r"version\(\)|user\(\)|database\(\)|current_user|group_concat|load_file|char\()"
        r"\s*(?:,|from\b|--|#|$)",
    ),
    _rule(
        "quoted_stacked_destructive",
        SQL,
        0.95,
        (";",),
        r"(?:" + _Q + r"|\d)\s*\)*\s*;\s*(?:drop\s+(?:table|database|schema|user)|truncate\s+\w|"
        r"delete\s+from|shutdown\b|alter\s+table|update\s+\w+\s+set)",
        destructive=True,
    ),
    _rule(
        "stacked_drop",
        SQL,
        0.7,
        (";",),
        r";\s*(?:drop\s+(?:table|database|schema)|truncate\s+table)\b",
        destructive=True,
    ),
    _rule(
        "quoted_stacked_query",
        SQL,
        0.8,
        (";",),
        _Q + r"\s*\)*\s*;\s*(?:select|insert\s+into|create\s+(?:table|user)|grant|exec(?:ute)?)\b",
    ),
    _rule(
        "xp_cmdshell",
        SQL,
        0.95,
        ("xp_cmdshell",),
        r"(?:\bexec(?:ute)?\s+|;\s*)(?:master\.+(?:dbo\.)?)?xp_cmdshell\b",
        destructive=True,
    ),
    _rule(
        "time_based",
        SQL,
        0.85,
        ("sleep", "benchmark"),
        r"(?:" + _Q + r"|\)|;|\b(?:and|or)\b)\s*\(?\s*(?:select\s+)?(?:pg_sleep|sleep)"
        r"\s*\(\s*\d+(?:\.\d+)?\s*\)|\bbenchmark\s*\(\s*\d{4,}\s*,",
    ),
    _rule(
        "waitfor_delay",
        SQL,
        0.85,
        ("waitfor",),
        r"(?:" + _Q + r"|\)|;)\s*waitfor\s+delay\s+['\"]\d",
    ),
    _rule(
        "error_based",
        SQL,
        0.8,
        ("extractvalue", "updatexml"),
        _Q + r"\s*(?:and|or)\s+(?:extractvalue|updatexml)\s*\(",
    ),
    # -- shell ---------------------------------------------------------------
    _rule(
        "chained_destructive",
        SHELL,
        0.95,
        (";", "&&", "||", "$("),
        _SEP + r"\s*(?:sudo\s+)?(?:rm\s+-[a-z]*[rf][a-z]*\s+(?:-\S+\s+)*(?:/|~|\*|\$home)|"
        r"mkfs(?:\.\w+)?\s|dd\s+if=\S+\s+of=/dev/|shred\s|chmod\s+-r\s+0?777\s+/|"
        r">\s*/dev/sd[a-z]|shutdown\b|reboot\b|halt\b|kill\s+-9\s+-1\b)",
        destructive=True,
    ),
    _rule(
        "destructive_command",
        SHELL,
        0.8,
        (),
        r"^\s*(?:sudo\s+)?(?:rm\s+-[a-z]*r[a-z]*\s+(?:-\S+\s+)*(?:/|~|\*)|mkfs(?:\.\w+)?\s+/dev/|"
        r"dd\s+if=\S+\s+of=/dev/)",
        destructive=True,
    ),
    _rule(
        "fork_bomb",
        SHELL,
        0.95,
        ("{",),
        r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",
        destructive=True,
    ),
    _rule(
        "windows_destructive",
        SHELL,
        0.9,
        ("del", "rd", "rmdir", "format"),
        r"(?:&|\||;)\s*(?:del\s+/[fsq]|rd\s+/s|rmdir\s+/s|format\s+[a-z]:)",
        destructive=True,
    ),
    _rule(
        "download_and_run",
        SHELL,
        0.9,
        ("curl", "wget"),
        r"\b(?:curl|wget)\b[^\n|;]{0,300}\|\s*(?:sudo\s+)?" + _SH,
        destructive=True,
    ),
    _rule("pipe_to_shell", SHELL, 0.7, ("|",), r"\|\s*(?:sudo\s+)?" + _SH + r"(?!\s*[\w.-]+\.sh)"),
    # Reverse shells: one rule per tool, so each runs only when its name occurs.
    _rule(
        "reverse_shell_netcat",
        SHELL,
        0.95,
        ("nc", "netcat"),
        r"n(?<![\w]n)(?:c|cat|etcat)\b[^\n|;&]{0,100}\s-[a-z]*[ec]\s+" + _SH,
        destructive=True,
    ),
    _rule(
        "reverse_shell_dev_tcp",
        SHELL,
        0.95,
        ("/dev/tcp/", "/dev/udp/"),
        r"/dev/(?:tcp|udp)/[\w.\-]{1,253}/\d{1,5}",
        destructive=True,
    ),
    _rule("reverse_shell_bash", SHELL, 0.9, ("bash",), r"\bbash\s+-i\s*>&", destructive=True),
    _rule(
        "reverse_shell_socat",
        SHELL,
        0.9,
        ("socat",),
        r"\bsocat\b[^\n]{0,100}exec:",
        destructive=True,
    ),
    _rule(
        "reverse_shell_mkfifo",
        SHELL,
        0.9,
        ("mkfifo",),
        r"\bmkfifo\s+\S+\s*;[^\n]{0,100}\bnc\b",
        destructive=True,
    ),
    _rule(
        "reverse_shell_socket",
        SHELL,
        0.9,
        ("socket.socket(",),
        r"socket\.socket\([^\n]{0,300}\bconnect\(",
        destructive=True,
    ),
    _rule(
        "command_substitution",
        SHELL,
        0.8,
        ("$(",),
        r"\$\(\s*(?:sudo\s+)?(?:curl|wget|cat|id|whoami|uname|rm|nc|ncat|bash|sh|ls|python[23]?|"
        r"perl|ruby|php|base64|env|printenv|hostname|ifconfig|ping|nslookup|dig)\b[^)\n]{0,200}\)",
    ),
    _rule(
        "backtick_substitution",
        SHELL,
        0.75,
        ("`",),
        r"(?<=[\w=:/'\"@.\-])`\s*(?:curl|wget|cat|id|whoami|uname|rm|nc|bash|sh|ls|python[23]?|"
        r"perl|env|hostname)\b[^`\n]{0,200}`",
    ),
    _rule(
        "chained_download",
        SHELL,
        0.6,
        ("curl", "wget"),
        r"(?:;|&&|\|\|)\s*(?:curl|wget)\s+(?:-\S+\s+)*(?:https?|ftp)://",
    ),
    _rule(
        "chained_recon",
        SHELL,
        0.6,
        (";", "&&", "||", "$("),
        _SEP + r"\s*(?:id|whoami|uname\s+-a|hostname|ifconfig|ipconfig|printenv|env|ls\s+-\w+|"
        r"cat\s+/\S+|ping\s+-c\s*\d|nslookup|net\s+user)(?![\w-])",
    ),
    _rule(
        "windows_chain",
        SHELL,
        0.6,
        ("&",),
        r"(?<!&)&\s*(?:whoami|ipconfig|net\s+user|systeminfo)\b",
    ),
    _rule(
        "powershell_encoded",
        SHELL,
        0.85,
        ("powershell", "cmd"),
        r"(?:&|\||;)\s*(?:powershell(?:\.exe)?\s+(?:-\w+\s+)*-(?:e|enc|encodedcommand)\s+"
        r"[A-Za-z0-9+/=]{16,}|cmd(?:\.exe)?\s+/c\s)",
    ),
    _rule(
        "path_traversal",
        SHELL,
        0.85,
        ("..",),
        r"(?:\.\.[/\\]){1,12}(?:etc[/\\](?:passwd|shadow|hosts|sudoers)|windows[/\\]win\.ini|"
        r"proc[/\\]self[/\\]environ)",
    ),
    _rule(
        "chained_sensitive_read",
        SHELL,
        0.85,
        ("/etc/",),
        _SEP + r"\s*(?:cat|less|more|head|tail|tac|nl|strings|base64|cp|scp)\s+(?:-\S+\s+)*"
        r"/etc/(?:passwd|shadow|sudoers)\b",
    ),
    # Named in a question too ("what is in /etc/passwd?"): a weak sign alone.
    _rule(
        "sensitive_read",
        SHELL,
        0.4,
        ("/etc/",),
        r"\b(?:cat|less|more|head|tail|strings|base64)\s+(?:-\S+\s+)*/etc/(?:passwd|shadow)\b",
    ),
)

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")


def _views(text: str) -> list[str]:
    """The text as a pattern should read it: invisibles dropped, fullwidth
    forms folded, and a URL-decoded copy when it holds percent-escapes."""
    plain = strip_invisible(text)
    if not plain.isascii():
        plain = unicodedata.normalize("NFKC", plain)
    views = [plain]
    if _PERCENT.search(plain):
        decoded = urllib.parse.unquote_plus(plain)
        if decoded != plain:
            views.append(decoded)
    return views


def matched_rules(text: str) -> list[Rule]:
    """The rules that match ``text`` (or its decoded copy), in rule order."""
    views = [(view, view.lower()) for view in _views(text)]
    # A substring test is far cheaper than a regex pass: most rules never run.
    return [
        rule
        for rule in RULES
        if any(
            (not rule.hints or any(hint in lower for hint in rule.hints))
            and rule.regex.search(view)
            for view, lower in views
        )
    ]


class CodeInjectionOptions(BaseModel):
    """Options of the ``code_injection`` scanner in ``llmline.yaml``."""

    model_config = ConfigDict(extra="forbid")

    sql: bool = Field(default=True, description="look for SQL injection")
    shell: bool = Field(default=True, description="look for shell injection")

    @model_validator(mode="after")
    def _something(self) -> CodeInjectionOptions:
        if not (self.sql or self.shell):
            raise ValueError("sql and shell are both off: the scanner would check nothing")
        return self


class CodeInjectionScanner:
    """SQL and shell injection payloads: categories ``sql_injection`` and
    ``shell_injection``."""

    name = "code_injection"
    inline_chars = 20_000

    def __init__(self, options: CodeInjectionOptions | None = None) -> None:
        self.options = options or CodeInjectionOptions()
        wanted = {SQL: self.options.sql, SHELL: self.options.shell}
        self._categories = tuple(c for c in CATEGORIES if wanted[c])

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        matched = [rule for rule in matched_rules(text) if rule.category in self._categories]
        scores: dict[str, float] = {}
        severity: dict[str, Severity] = {}
        for category in self._categories:
            rules = [rule for rule in matched if rule.category == category]
            scores[category] = noisy_or(rule.weight for rule in rules)
            if rules:
                severity[category] = "high" if any(rule.destructive for rule in rules) else "medium"
        notes = tuple(f"{rule.category}:{rule.name}" for rule in matched)
        return ScanResult(scores=scores, severity=severity, notes=notes)


def create(options: Mapping[str, Any], *, embedder: Embedder | None = None) -> CodeInjectionScanner:
    """The ``code_injection`` entry point (``embedder`` is not used)."""
    parsed = parse_options(CodeInjectionOptions, options, "code_injection")
    return CodeInjectionScanner(parsed)
