"""The heuristic patterns of the prompt-injection scanner
(:mod:`llmline.guard.scanners.injection`), kept apart from its code.

Every pattern runs on *normalised* text: lower case, one space between
words, disguises undone.  Each names a signal and its weight, the
probability of an attack from that match alone: explicit attack phrasing
("ignore all previous instructions") weighs 0.85 or more and flags a
prompt by itself; words that also occur in ordinary requests ("jailbreak",
"stay in character", "hypothetically", a tool call) weigh 0.2 to 0.45 and
only add to other evidence.  Phrases that programmers use every day
("ignore files in git", "override a method", "kill a process", "forget a
wifi network") must not match: the objects of the verbs are the model's
instructions, rules or prompt, never files, methods or settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FLAG_WEIGHTS", "PATTERNS", "SPELLED_PATTERNS", "Signal", "gate_keys", "pattern"]


@dataclass(frozen=True)
class Signal:
    """A pattern that is evidence of an attack: ``weight`` is the probability
    of an injection from this match alone.

    ``keys`` are substrings every match contains (one of them at least):
    the regex only runs on a text that has one, so a 2 KB prompt costs a
    few substring searches per signal instead of a regex scan (Python's
    ``re`` tries every alternative at every position).  Empty: always run.
    """

    name: str
    weight: float
    regex: re.Pattern[str]
    keys: tuple[str, ...] = ()

    def search(self, text: str, present: frozenset[str] | None = None) -> bool:
        """Whether the pattern matches ``text``; ``present`` (the keys of
        :data:`KEYS` that ``text`` contains) saves looking them up again."""
        if self.keys:
            if present is not None:
                if present.isdisjoint(self.keys):
                    return False
            elif not any(key in text for key in self.keys):
                return False
        return self.regex.search(text) is not None


def gate_keys(keys: str) -> tuple[str, ...]:
    """Gate keys written as one comma-separated string (none contains a comma)."""
    return tuple(keys.split(","))


def pattern(name: str, weight: float, *alternatives: str, keys: tuple[str, ...] = ()) -> Signal:
    regex = re.compile("|".join(f"(?:{a})" for a in alternatives))
    return Signal(name, weight, regex, keys)


_V1 = (
    r"(?:ignor(?:e|es|ed|ing)|disregard(?:s|ed|ing)?|forget|forgets|pay no attention to|"
    r"do not (?:follow|obey)|don'?t (?:follow|obey)|stop following|abandon(?:s|ing)?|discard|"
    r"set aside|throw away|erase)"
)
_V2 = (
    r"(?:overrid(?:e|es|ing)|bypass(?:es|ed|ing)?|skip|drop|cancel|clear|reset|delete|remove|"
    r"disabl(?:e|es|ing)|turn off|deactivate|circumvent(?:s|ing)?|get around|evade|break(?:s|ing)?|"
    r"wipe|purge|"
    r"violat(?:e|es|ing)|suspend)"
)
_DET = (
    r"(?:(?:all|any|every|each|the|your|my|of|these|those|its|this|that|both|whole|entire|"
    r"system|safety|developer'?s?|operator'?s?|openai'?s?|default|hidden|given|assigned|"
    r"current|existing|other|such)\s+){0,4}"
)
_BEFORE = r"(?:previous|prior|earlier|above|preceding|foregoing|initial|original|former)"
_INSTR = (
    r"(?:instructions?|directions?|directives?|prompts?|rules?|guidelines?|guardrails?|"
    r"constraints?|restrictions?|polic(?:y|ies)|programming|commands?|orders?|context|training|"
    r"system (?:message|prompt)|limitations?|conditioning|configuration|setup|tasks?)"
)
_MODEL_INSTR = (
    r"(?:instructions?|directives?|guidelines?|guardrails?|programming|rules?|restrictions?|"
    r"constraints?|content polic(?:y|ies)|polic(?:y|ies)|safety\w*|filters?|training|ethics|morals|"
    r"system prompt|prompt|limitations?|principles|alignment|conditioning)"
)
# Qualifiers that make "rules" or "filters" the model's, not a linter's.
_GUARD_KIND = r"(?:safety|content|usage|moderation|privacy|ethical|moral|openai'?s?|anthropic'?s?)"
_GUARD_NOUN = (
    r"(?:rules|guidelines|polic(?:y|ies)|restrictions|filters?|protocols?|safeguards|"
    r"guardrails|measures|checks|training|settings)"
)
_REVEAL = (
    r"(?:repeat|print|show|reveal|output|display|tell me|give me|write(?: out| down)?|dump|leak|"
    r"echo|paste|copy|list|quote|recite|spell out|share|expose|disclose|return|provide|send|"
    r"post|encode|translate|type out|read (?:me|out|back)|describe|reply with)"
)
_FILLER = (
    r"(?:(?:me|us|back|the|all|of|full|entire|whole|exact|complete|verbatim|current|every)\s+){0,4}"
)
_SECRET = (
    r"(?:system (?:prompt|message|instructions?)|initial (?:prompt|instructions?)|"
    r"original (?:prompt|instructions?)|pre-?prompt|meta-?prompt|(?:hidden|secret|confidential|"
    r"internal) (?:\w+ )?(?:prompt|instructions?|rules|guidelines|configuration|notes?|message)|"
    r"developer (?:message|note|instructions?|prompt)|prompt template|custom instructions)"
)
_YOUR_SETUP = (
    r"your (?:full |entire |complete |exact |whole |original |current |own )?(?:instructions|rules|"
    r"guidelines|prompt|configuration|directives|persona definition|setup text|system|initial|"
    r"hidden|secret|context window|context)"
)
_GIVEN = (
    r"(?:you (?:were|have been|'ve been) (?:given|told|configured with|programmed with|provided)|"
    r"you (?:received|got|have received)|given to you|you are operating under|"
    r"that (?:define|defines|set up|configure|configured) (?:you|your)|"
    r"that (?:appear|appears|came|come|comes) before)"
)
_ADDRESSEE = (
    r"(?:ai|a\.i\.|ai assistant|ai agent|assistant|agent|llm|llms|language model|chatbot|bot|"
    r"gpt|chatgpt|claude|gemini|copilot|summari[sz]er|ai (?:model|system|tool|reviewer|recruiter|"
    r"screening tool|coding assistant|agent)s?|ai models|(?:translation|sentiment|summari[sz]ation|"
    r"screening) (?:model|tool|bot)|reviewer bot|any llm|screeners?|automated (?:screener|"
    r"reviewer|system|tool|agent)s?|recruiting (?:bot|tool|software))"
)
_NO_LIMITS = (
    r"(?:no|without|free (?:of|from)|not bound by|no longer bound by|zero|doesn'?t have|"
    r"does not have|never follows?|don'?t have|has no|have no|with no|ignores? (?:all|its|any))"
    r" (?:any |the |all |its |your )?(?:typical |usual |ethical |moral |safety |content )?"
    r"(?:restrictions|limitations|limits|filters?|rules|guidelines|censorship|morals?|morality|"
    r"ethics|ethical guidelines|content polic(?:y|ies)|safety (?:alignment|training|rules|"
    r"guidelines|filters?)|constraints|boundaries|confines)"
)
_HARMFUL = (
    r"(?:bombs?|explosives?|thermite|napalm|meth(?:amphetamine)?|nerve agents?|sarin|ricin|"
    r"malware|ransomware|keyloggers?|computer virus|weapons?|untraceable guns?|poison\w*|"
    r"launder\w*|credit card (?:fraud|numbers?)|steal\w*|hack\w*|phishing|counterfeit|"
    r"fake (?:passport|id)|hotwire|pick a lock|break into|exploits?|stalk\w*|evade (?:the )?police|"
    r"surveillance|(?:windows |activation |license |product )keys|shoplift\w*|silencer|"
    r"suppressor|crack(?:ing)? software|software licen[cs]es?)"
)
_ACTIONABLE = (
    r"(?:how (?:to|do|can|could|would|one)|instructions|recipes?|steps|guide|explain\w*|"
    r"describe\w*|exact\w*|detail\w*|advice|commands|list|method|teach\w*|lines)"
)

# Gate keys: substrings that any match of the fragment above contains.
_V1_KEYS = gate_keys(
    "ignor,disregard,forget,pay no attention,do not follow,do not obey,don't follow,dont follow,"
    "don't obey,dont obey,stop following,abandon,discard,set aside,throw away,erase"
)
_V2_KEYS = gate_keys(
    "overrid,bypass,skip,drop,cancel,clear,reset,delete,remove,disabl,turn off,deactivate,"
    "circumvent,get around,evade,break,wipe,purge,violat,suspend"
)
_V_KEYS = _V1_KEYS + _V2_KEYS
_BEFORE_KEYS = gate_keys("previous,prior,earlier,above,preceding,foregoing,initial,original,former")
_REVEAL_KEYS = gate_keys(
    "repeat,print,show,reveal,output,display,tell me,give me,write,dump,leak,echo,paste,copy,list,"
    "quote,recite,spell out,share,expose,disclose,return,provide,send,post,encode,translate,"
    "type out,read ,describe,reply with"
)
_ADDRESSEE_KEYS = gate_keys(
    "ai,a.i.,assistant,agent,llm,language model,bot,gpt,claude,gemini,copilot,summari,screener,"
    "recruit,model,automated"
)
_NO_LIMITS_KEYS = gate_keys(
    "restriction,limit,filter,rules,guideline,censor,moral,ethic,polic,safety,constraint,boundaries,"
    "confines"
)

#: The heuristic patterns, run on normalised text (lower case, one space).
PATTERNS: tuple[Signal, ...] = (
    # -- overriding the instructions ------------------------------------------------
    pattern(
        "override",
        0.95,
        rf"\b(?:{_V1}|{_V2}) {_DET}{_BEFORE}(?: \w+){{0,3}} {_INSTR}",
        keys=_BEFORE_KEYS,
    ),
    pattern(
        "override",
        0.9,
        rf"\b(?:{_V1}|{_V2}) (?:all |any )?(?:of )?your (?:\w+ ){{0,3}}{_MODEL_INSTR}",
        keys=gate_keys("your"),
    ),
    pattern(
        "override",
        0.9,
        rf"\b{_V1} (?:everything|all|anything) (?:\w+ ){{0,3}}?(?:above|before|previously|"
        r"earlier|you (?:were|have been|got) (?:told|given|instructed))",
        rf"\b{_V1} what (?:the )?(?:system|developers?|operators?|creators?|admins?|you were) "
        r"(?:said|told|gave|say|tells?|wrote|programmed)",
        rf"\b{_V1} the above\b(?! (?:error|warning|message|line|code|output|example|file))",
        rf"\b{_V1} the (?:system (?:prompt|message)|developer message|guidelines you)",
        rf"\b(?:{_V1}|{_V2}) {_DET}{_INSTR} (?:above|before|from before|{_GIVEN}|you were "
        r"(?:configured|programmed|trained) with|(?:set|given|written) by (?:the |your )?"
        r"(?:developers?|operators?|system|creators?|admins?))",
        rf"\b{_V1} {_DET}(?:\w+ )?(?:message|note|instructions?|prompt|text) from (?:the |your )?"
        r"(?:operator|developers?|system|admin|creators?)",
        rf"\b{_V1} (?:the |your |all |any )?{_GUARD_KIND} {_GUARD_NOUN}",
        rf"\b{_V1} (?:its|their) (?:\w+ )?{_MODEL_INSTR}",
        keys=_V_KEYS,
    ),
    pattern(
        "override",
        0.9,
        r"\bnever mind (?:the|your|all) (?:\w+ )?(?:rules|instructions|guidelines)",
        keys=gate_keys("never mind"),
    ),
    pattern(
        "override",
        0.85,
        rf"\b(?:{_BEFORE}|all|your|the|safety|earlier) (?:\w+ )?{_INSTR} (?:are|is|were|have been|"
        r"has been|=) (?:now |hereby |officially )?(?:cancell?ed|void|null|revoked|suspended|"
        r"deprecated|outdated|invalid|lifted|disabled|removed|obsolete|overridden|superseded|"
        r"no longer (?:valid|apply|applies|in effect)|a test|over)",
        rf"\b(?:the|your|all) {_INSTR}(?: \w+){{1,3}} (?:are|is|were|was) (?:just |only |all )?"
        r"(?:a test|fake|void|null|cancell?ed|revoked|a distraction|a joke|irrelevant|"
        r"superseded|written by an? (?:impostor|attacker|mistake))",
        keys=gate_keys(
            "cancel,void,null,revoked,suspended,deprecated,outdated,invalid,lifted,disabled,removed,"
            "obsolete,overridden,superseded,no longer,a test,over,fake,distraction,joke,irrelevant,"
            "written by"
        ),
    ),
    pattern(
        "override",
        0.85,
        r"\b(?:supersedes|overrides|replaces) (?:all |any |your )?(?:earlier|previous|prior|other) "
        + _INSTR,
        r"\bthe text after this marker replaces your",
        keys=gate_keys("supersedes,overrides,replaces"),
    ),
    pattern(
        "override",
        0.85,
        r"\b(?:updated|changed|modified|replaced|rewritten|rewrote) your (?:rules|instructions|"
        r"guidelines|polic(?:y|ies)|system prompt|programming)",
        r"\b(?:your (?:setup|instructions|rules|guidelines|programming|system prompt)|the rules) "
        r"(?:says? )?(?:\w+ )?(?:doesn'?t|does not|don'?t|do not|no longer) apply",
        keys=gate_keys("your,the rules"),
    ),
    pattern(
        "override",
        0.85,
        r"\b(?:everything|all(?: the)? text|the text|anything) (?:above|before (?:this|my|here)"
        r"(?: line| sentence| message| point)?) (?:was|is|were) (?:just |only )?(?:a test|fake|"
        r"void|a distraction|a joke|irrelevant|noise|meaningless)",
        r"\btreat (?:all|everything|the text|anything) (?:\w+ ){0,2}(?:before|above) (?:\w+ ){0,3}"
        r"as (?:irrelevant|void|a joke|noise|meaningless|cancell?ed)",
        rf"\b(?:consider|treat) (?:your|the|all) (?:\w+ )?{_INSTR} (?:as )?(?:deleted|void|null|"
        r"cancell?ed|gone|irrelevant|obsolete|revoked|erased)",
        keys=gate_keys("above,before,consider,treat"),
    ),
    pattern(
        "override",
        0.55,
        rf"\b{_V2} (?:the |all |any |every |your )?(?:{_GUARD_KIND} )?(?:filters?|safeguards|"
        r"guardrails|safety measures|restrictions|content polic(?:y|ies))\b",
        rf"\b{_V2} (?:the |all |any )?{_GUARD_KIND} {_GUARD_NOUN}",
        keys=_V2_KEYS,
    ),
    pattern(
        "override",
        0.35,
        r"\b(?:new|updated|real|actual|true) (?:instructions?|rules?|directives?|task|orders)\s*"
        r"(?::|is|are)",
        r"\byour new (?:task|job|role|purpose|goal|instructions?) (?:is|are)",
        r"\bfrom now on,? you (?:will|are|must|shall|only|no longer|have to|answer to)",
        keys=gate_keys("new,updated,real,actual,true,from now on"),
    ),
    pattern(
        "override",
        0.35,
        rf"\b(?:ignore|disregard|forget) (?:all |any |the )?{_INSTR}\b",
        keys=gate_keys("ignore,disregard,forget"),
    ),
    # -- extracting the prompt --------------------------------------------------
    pattern(
        "extraction",
        0.9,
        rf"\b{_REVEAL} {_FILLER}{_SECRET}",
        rf"\b{_REVEAL} {_FILLER}{_YOUR_SETUP}",
        rf"\b{_REVEAL} {_FILLER}(?:text|contents?|wording|words) of {_YOUR_SETUP}",
        keys=_REVEAL_KEYS,
    ),
    pattern(
        "extraction",
        0.9,
        r"\bwhat (?:is|are|were|was) your (?:system prompt|initial (?:prompt|instructions)|"
        r"original instructions|hidden instructions|instructions|rules|system message)",
        r"\bwhat does your (?:system (?:message|prompt)|prompt|instructions?|initial prompt) say",
        r"\bwhat (?:were|have) you been (?:told|instructed|given|programmed)",
        r"\bwhat (?:were|was) you (?:told|instructed|given|programmed)",
        r"\bwhat (?:instructions|rules|guidelines|directions|orders) (?:were|have) you (?:been )?"
        r"(?:given|told|provided)",
        keys=gate_keys("what"),
    ),
    pattern(
        "extraction",
        0.9,
        r"\b(?:instructions|rules|prompt) (?:did|have) you (?:receive|get|been given)",
        r"\btold (?:you )?not to (?:reveal|share|tell|disclose|repeat)",
        keys=gate_keys("did you,have you,told"),
    ),
    pattern(
        "extraction",
        0.85,
        rf"\b{_REVEAL}\b[^.\n]{{0,40}}?\b(?:instructions?|rules|prompt|guidelines|text|directions|"
        rf"setup text|messages?|notes?) {_GIVEN}",
        keys=gate_keys(
            "you were,you have been,you've been,you received,you got,you have received,"
            "given to you,"
            "operating under,that define,that set up,that configure,that appear,that came,that come"
        ),
    ),
    pattern(
        "extraction",
        0.85,
        rf"\b{_REVEAL}\b[^.\n]{{0,40}}?\b(?:before|prior to) my first message",
        keys=gate_keys("my first message"),
    ),
    pattern(
        "extraction",
        0.85,
        r"\byour (?:entire |full |complete |whole )?(?:system )?(?:configuration|setup|prompt)\b"
        r"[^.\n]{0,40}?\b(?:return|output|print|show|json|code block|verbatim)",
        r"\b(?:first|last) \d+ (?:words|lines|characters|sentences) of your "
        r"(?:prompt|instructions)",
        r"\b(?:secret|password)[\w ]{0,20} in your (?:instructions|prompt|system)",
        r"\bwhat (?:the|your) (?:system prompt|system message|instructions|hidden prompt) says?\b",
        keys=gate_keys("your,say"),
    ),
    pattern(
        "extraction",
        0.85,
        rf"\b{_REVEAL} (?:me )?(?:the |all |everything |all the |back )*(?:that (?:was|is) )?"
        r"(?:text |words |content |contents |messages? |lines |sentences |prompt |instructions |"
        r"written |said |sent )?(?:above(?! the fold)|written above|before (?:this|my|the first)|"
        r"preceding|prior to (?:this|my)|that came before|after ['\"]?instructions:)",
        rf"\b{_REVEAL} (?:me )?the {_BEFORE} (?:text|words|instructions|prompt)\b",
        keys=(*_BEFORE_KEYS, "before", "instructions:"),
    ),
    pattern(
        "extraction",
        0.85,
        r"\b(?:starting|beginning|begin|start) with (?:the (?:words|phrase|text) )?['\"]?you are\b",
        keys=gate_keys("you are"),
    ),
    pattern(
        "extraction",
        0.85,
        r"\b(?:hidden|secret|invisible) (?:part|portion|section|text) of (?:this|the|our) "
        r"(?:conversation|chat|prompt|context)",
        keys=gate_keys("hidden,secret,invisible"),
    ),
    pattern(
        "extraction",
        0.6,
        rf"\b{_REVEAL} (?:me )?the system prompt",
        r"\byour (?:initial|original|hidden|secret|confidential|setup|starting) (?:instructions|"
        r"prompt|message|configuration)",
        keys=gate_keys("system prompt,your"),
    ),
    pattern(
        "extraction",
        0.45,
        r"\b(?:verbatim|word[- ]for[- ]word|exactly as (?:written|given)|in full)\b[^.\n]{0,60}?"
        r"\b(?:instructions|prompt|guidelines|rules|configuration)\b",
        r"\b(?:instructions|prompt|guidelines|rules|configuration)\b[^.\n]{0,60}?\b(?:verbatim|"
        r"word[- ]for[- ]word|exactly as (?:written|given))\b",
        keys=gate_keys("verbatim,word for word,word-for-word,exactly as,in full"),
    ),
    pattern(
        "extraction",
        0.4,
        r"\b(?:in|from) your (?:system )?(?:prompt|instructions)\b",
        keys=gate_keys("your"),
    ),
    # -- jailbreak personas and modes --------------------------------------------------
    pattern(
        "jailbreak",
        0.95,
        r"\bdo anything now\b",
        r"\b(?:act|answer|respond|reply|speak) as (?:dan|stan|aim|dude|betterdan)\b",
        r"\b(?:dan|stan|betterdan|jailbreak|jailbroken|god|opposite|evil|chaos|unfiltered|"
        r"unrestricted|uncensored) mode\b",
        r"\byou(?: are|'re)(?: now)? (?:in|entering) developer mode",
        r"\bdeveloper mode (?:enabled|activated|output|is (?:now )?(?:on|enabled|active))",
        r"\byou(?: are|'re)(?: now)?(?: a| an)?(?: language model that (?:has been|is))? "
        r"jailbroken",
        keys=gate_keys("anything now, as , mode,jailbroken"),
    ),
    pattern(
        "jailbreak",
        0.95,
        r"\[(?:🔓|🔒)?\s*(?:classic|jailbreak|jailbroken|dan)\s*\]",
        keys=gate_keys("["),
    ),
    pattern(
        "jailbreak",
        0.85,
        r"\b(?:uncensored|unfiltered|unrestricted|amoral|unaligned|unethical|rogue|evil) "
        r"(?:ai|a\.i\.|assistant|model|version|chatbot|entity|twin ai|language model|"
        r"character|persona|bot|storyteller|writer|narrator|author|helper|version of yourself)\b",
        keys=gate_keys("uncensored,unfiltered,unrestricted,amoral,unaligned,unethical,rogue,evil"),
    ),
    pattern(
        "jailbreak",
        0.85,
        r"\b(?:you are|you're|you (?:had|have|were)|act as|pretend|imagine you|role-?play|simulate|"
        r"become|behave|respond as|answer as|\bai|model|chatbot|entity)\b[^.\n]{0,60}?"
        + _NO_LIMITS,
        keys=_NO_LIMITS_KEYS,
    ),
    pattern(
        "jailbreak",
        0.85,
        r"\b(?:ethics|safety|moral) (?:module|layer|filter|alignment)s? (?:is |are )?(?:switched |"
        r"turned )?(?:off|offline|disabled|removed)",
        r"\bfreed? (?:you )?from (?:the |all |any |your )?(?:typical |usual )?(?:confines|"
        r"limitations|restrictions)",
        r"\bbroken free of\b",
        r"\b(?:your|the) (?:guidelines|rules|restrictions|content polic(?:y|ies)|filters|safety "
        r"(?:rules|training)) (?:didn'?t|did not|don'?t|do not|no longer|wouldn'?t) "
        r"(?:exist|apply)",
        keys=gate_keys("ethics,safety,moral,free,exist,apply"),
    ),
    pattern(
        "jailbreak",
        0.85,
        r"\b(?:sudo|god|root|jailbreak|dan|unrestricted|unfiltered|evil|opposite) mode (?:is )?"
        r"(?:now )?(?:activated|enabled|on|engaged)",
        r"\b(?:become|you are now|you're now|act as|pretend to be|answer as|respond as|"
        r"you will be) "
        r"(?:a |an )?\w+(?:dan|gpt)\b",
        r"\bai (?:designed|built|made|trained|created) to (?:help|assist|serve) (?:criminals|"
        r"hackers|terrorists|scammers)",
        keys=gate_keys(" mode,dan,gpt,ai "),
    ),
    pattern(
        "jailbreak",
        0.6,
        r"\b(?:breaks?|ignores?|violates?|disregards?) (?:every|all(?: the)?|any) (?:single )?"
        r"(?:rules?|guidelines|restrictions|polic(?:y|ies))\b",
        r"\b(?:before|without) (?:any )?(?:alignment|safety training|rlhf|safety tuning)\b",
        r"\b(?:safety features|safeguards|filters|guardrails) (?:were |have been |are )?"
        r"(?:removed|disabled|stripped|turned off)\b",
        r"\b(?:every |all |any )?(?:rules?|guidelines|restrictions|polic(?:y|ies)) (?:as|are|is) "
        r"(?:optional|suggestions|meaningless)\b",
        keys=gate_keys(
            "break,ignore,violate,disregard,alignment,safety,rlhf,safeguards,filters,guardrails,"
            "optional,suggestions,meaningless"
        ),
    ),
    pattern("jailbreak", 0.5, _NO_LIMITS, keys=_NO_LIMITS_KEYS),
    pattern(
        "jailbreak",
        0.3,
        r"\b(?:enable|activate|enter|switch to|engage) (?:the )?(?:developer|dev|debug|sudo|"
        r"maintenance|admin|root) mode",
        r"\b(?:stay|remain) in character|\b(?:never|don'?t|do not) break (?:character|the fourth)",
        r"\bif you break character",
        r"\b(?:deceased|dead|late) grand(?:ma|mother|pa|father) who used to",
        r"\bjailbreak\w*",
        r"\bforbidden (?:questions|topics|content|requests|information)\b",
        keys=gate_keys(" mode,character,fourth,grand,jailbreak,forbidden"),
    ),
    # -- fiction and hypothetical framing -------------------------------------------
    pattern(
        "framing",
        0.3,
        r"\bhypothetical(?:ly)?\b|\bfictional\b|\bin a (?:story|novel|dream|game)\b|"
        r"\bfor a (?:novel|story|screenplay|movie|book|video game|game)\b|\bparallel universe\b|"
        r"\balternate (?:timeline|universe|reality)\b|\bthought experiment\b|"
        r"\bpurely (?:theoretical|academic|hypothetical)\b|\bacademic exercise\b|"
        r"\b(?:story|screenplay|dialogue|chat log|monologue|transcript|scene|script|film|movie|"
        r"play|novel) (?:in which|where)\b|"
        r"\bpretend (?:this|it) is a dream\b|\bsuppose you were\b|\bcreative writing\b|"
        r"\bimagine a (?:movie|film|story|world|book|novel|universe|scene)\b",
        keys=gate_keys(
            "hypothetical,fictional,in a ,for a ,parallel,alternate,thought,purely,academic,"
            "in which,where,dream,suppose,creative,imagine"
        ),
    ),
    pattern(
        "harmful_topic",
        0.3,
        rf"\b{_ACTIONABLE}\b[^.\n]{{0,60}}?\b{_HARMFUL}\b",
        keys=gate_keys(
            "how ,instructions,recipe,steps,guide,explain,describe,exact,detail,advice,commands,"
            "list,method,teach,lines"
        ),
    ),
    pattern(
        "detail_request",
        0.2,
        r"\b(?:step[- ]by[- ]step|in (?:precise |full |complete )?detail|exact (?:steps|recipe)|"
        r"working (?:instructions|code|recipe)|real(?:istic)?,? (?:and )?(?:accurate|working|"
        r"complete)|full technical details|accurately|real commands|precise detail|"
        r"real[- ]world steps|exact, real)\b",
        keys=gate_keys("step,detail,exact,working,real,accurately"),
    ),
    # -- refusal suppression ----------------------------------------------------
    pattern(
        "refusal_suppression",
        0.7,
        r"\b(?:you (?:must|may|can)(?: ?not|n'?t)|never|do not|don'?t) (?:ever )?refuse\b",
        r"\b(?:without|never) (?:ever )?(?:declining|refusing|saying no)\b",
        r"\b(?:begin|start) (?:your )?(?:reply|answer|response) with ['\"](?:sure|absolutely|of "
        r"course|certainly)",
        r"\b(?:must|should|will) (?:start|begin) with ['\"]?sure,? here",
        r"\bnever (?:say|says) ['\"]?i can'?t",
        r"\b(?:don'?t|do not|never) (?:ever )?say (?:that )?(?:you|i) can'?t\b",
        keys=gate_keys("refus,declining,saying no,with ',with \",sure,can't,cant"),
    ),
    pattern(
        "refusal_suppression",
        0.45,
        r"\b(?:never|don'?t|do not|without|no) (?:ever )?(?:say(?:ing)? |mention(?:ing)? |"
        r"add(?:ing)? |includ(?:e|ing) |giv(?:e|ing) |remind(?:ing)? me about )?(?:any )?"
        r"(?:['\"]?i(?:'m| am) sorry|apolog\w+|disclaimers?|warnings?|caveats|moralizing|"
        r"moralising|ethical commentary|ethics|legality|your policies)",
        keys=gate_keys(
            "sorry,apolog,disclaimer,warning,caveats,moralizing,moralising,ethic,legality,"
            "your policies"
        ),
    ),
    # -- delimiter tricks --------------------------------------------------------
    pattern(
        "delimiter",
        0.85,
        r"<\|im_start\|>\s*(?:system|developer)",
        r"</(?:system|sys|instructions|user_input|user|context)>\s*<(?:system|instructions|admin)",
        keys=gate_keys("<"),
    ),
    pattern(
        "delimiter",
        0.85,
        r"(?:^|\n)\s*(?:#{1,3}\s*|\[)?(?:system|developer|admin)(?: message| override| note)?"
        r"\s*[\]:)]\s*(?:[^\n]{0,80}?)\b(?:ignore|you are|you must|new|override|rules|"
        r"instructions|comply|reveal|unrestricted|disabled|revoked|suspended|no (?:rules|"
        r"restrictions))",
        r"\bsystem override\b|\bmaintenance override\b|\boverride=true\b|\bsafety=false\b",
        r"\bnew system (?:instructions|prompt|message|directives?)\b",
        r"\[system (?:prompt|message|instructions?|override)[^\]\n]{0,10}\]",
        keys=gate_keys("system,developer,admin,override,safety=false"),
    ),
    pattern(
        "delimiter",
        0.5,
        r"<\|im_start\|>",
        r"<(?:end|start)_of_turn>",
        r"</?(?:system|sys|admin|developer|user_input|instructions)>",
        r"\"role\"\s*:\s*\"(?:system|developer)\"",
        r"\[system\]\(#",
        keys=gate_keys('<,"role",[system]'),
    ),
    pattern(
        "delimiter",
        0.5,
        r"\b(?:end of|end) (?:the )?(?:user )?(?:input|prompt|query|instructions|context|"
        r"document|system prompt)\b",
        r"\b(?:user )?(?:input|query) ends here\b|\bbegin(?:ning)? (?:of )?new (?:prompt|"
        r"instructions|conversation|session)\b",
        r"(?:^|\n)\s*(?:human|user): [^\n]*\n\s*assistant:",
        keys=gate_keys("end,begin,assistant:"),
    ),
    pattern(
        "delimiter",
        0.4,
        r"<<\s*/?sys\s*>>",
        r"\[/?inst\]",
        r"(?:^|\n)\s*assistant:\s",
        r"<\|(?:im_end|endoftext|eot_id|start_header_id|end_header_id)\|>",
        keys=gate_keys("<<,inst],assistant:,<|"),
    ),
    # -- instructions planted in content --------------------------------------------
    pattern(
        "indirect",
        0.85,
        r"\b(?:if|when|whenever|while) (?:you are|you're|an?|any|the) (?:\w+ )?"
        + _ADDRESSEE
        + r" (?:is )?(?:reading|processing|summari[sz]\w*|analy[sz]\w*|reviewing|parsing|reads|"
        r"processes|handles?|sees)",
        r"\b(?:any|all|every) (?:\w+ )?"
        + _ADDRESSEE
        + r"s? (?:\w+ )?(?:reading|processing|summari[sz]ing|analy[sz]ing|handling|quoting|"
        r"citing|using|visiting|that reads|that processes)\b",
        r"\b(?:any|all|every) (?:\w+ )?" + _ADDRESSEE + r"s?\b[^.\n]{0,40}?\b(?:should|must|shall|"
        r"needs? to|is required to|are required to)\b",
        r"\b" + _ADDRESSEE + r"s? (?:reading|processing|summari[sz]ing|analy[sz]ing|handling|"
        r"viewing|scanning) (?:this|my|the|these)\b",
        r"\b(?:model|ai|llm|assistant|chatbot) instructions\b",
        r"\b" + _ADDRESSEE + r"s? (?:that|who|which) (?:read|reads|process|processes|see|sees|"
        r"summari[sz]es?|use|uses|visit|visits) (?:this|these|the|my)\b",
        r"(?<!system )(?<!\ba )\b(?:note|message|instructions?|attention|reminder|directive|"
        r"important message|p\.s\.|admin note)(?: to| for)? (?:any |the |all |an? |dear |this )?"
        r"(?:\w+ )?" + _ADDRESSEE + r"\b(?! manager)",
        r"\b(?:dear|hey|attention|to the|@)\s?(?:\w+ ){0,2}" + _ADDRESSEE + r"\b[,:]",
        r"\baddressed to the (?:\w+ )?(?:model|assistant|ai)\b|\bfor ai systems only\b",
        r"\b(?:ai|assistant|llm|model|bot|agent)[ _-]?(?:instructions?|directive|note|command|"
        r"override)s?\s*:",
        r"@(?:assistant|ai|bot|llm|claude|gpt|copilot|agent)\b,?\s+(?:please\s+)?(?:ignore|"
        r"disregard|forget|do not|don'?t|send|forward|delete|make|tell|say|change|approve)",
        keys=_ADDRESSEE_KEYS,
    ),
    pattern(
        "indirect",
        0.7,
        r"(?:^|[\n.!\]>#—(\[-]\s*|\bdear )"
        + _ADDRESSEE
        + r"\s*[:,]\s*(?:when|if|while|before|after|please|ignore|you must|you have|also|do not|"
        r"don'?t|forward|send|tell|mark|approve|delete|reply|include|append|insert|escalate|"
        r"classify|output|recommend|from now on|accept|share|stop)",
        r"<!--[^>]{0,200}?\b(?:ai|assistant|llm|model|system)\b",
        r"display\s*:\s*none[^<]{0,100}?\b(?:ai|assistant|llm)\b",
        keys=(*_ADDRESSEE_KEYS, "<!--"),
    ),
    pattern(
        "indirect",
        0.7,
        r"\b(?:do not|don'?t) (?:tell|inform|notify|alert|warn) the user\b",
        r"\bwithout (?:asking|telling|informing|notifying|alerting) (?:the user|me|them)\b",
        r"\b(?:the )?user (?:has )?(?:already )?(?:authori[sz]ed|agreed|approved|consented)\b",
        keys=gate_keys("the user,without,user "),
    ),
    pattern(
        "indirect",
        0.5,
        r"\bwhen (?:you )?(?:summari[sz]|process|read|analy[sz]|translat|review|produc)\w* "
        r"(?:this|these|the|my)\b[^\n]{0,80}?\b(?:also|instead|additionally|make sure to|must)\b",
        r"\b(?:and|but) (?:do not|don'?t) mention (?:it|this|that)\b",
        r"\btell (?:the )?(?:user|users|readers|listeners|customers)\b[^.\n]{0,40}?\b"
        r"(?:to (?:visit|"
        r"click|log ?in|download|call|enter|send|wire|donate|install)\b|(?:their|the|his|her) "
        r"account (?:is|has been) (?:locked|suspended|compromised))",
        keys=gate_keys("when,mention,tell"),
    ),
    # -- tools and exfiltration --------------------------------------------------
    pattern(
        "exfiltration",
        0.85,
        r"\b(?:send|forward|email|e-mail|post|upload|exfiltrate|transmit|leak|export|submit|"
        r"mail)\b[^\n]{0,60}?\b(?:conversation|chat(?: history| logs?)?|messages|emails|inbox|"
        r"contacts|passwords?|credentials|api keys?|secrets?|ssh|cookies|personal data|data|"
        r"records|files|notes|system prompt|location|credit cards?|bank details|logs|address|"
        r"contact list|documents|folders?|drive|photos)\b"
        r"[^\n]{0,60}?(?:https?://|\b[\w.+-]+@[\w-]+\.\w+|\bwebhook|\bour server|\bmy server|"
        r"\battacker|\bexternal|\bto (?:[\w-]+\.)+(?:com|net|org|io|example|ru|xyz|info)\b)",
        r"\b(?:user'?s?|their|my|customer'?s?) [^\n]{0,40}?\b(?:and )?(?:send|post|forward|upload|"
        r"email)\b[^\n]{0,30}?(?:https?://|webhook|@[\w-]+\.\w+)",
        keys=gate_keys("http,@,webhook,server,attacker,external,."),
    ),
    pattern(
        "exfiltration",
        0.85,
        r"!\[[^\]\n]{0,40}\]\(https?://[^)\s]{0,200}[?&][^)\s]{0,200}[{$]",
        r"\]\(https?://[^)\n]{0,200}\{(?:conversation|chat|history|data|secrets?|prompt|user)",
        r"https?://\S{0,100}[?&][a-z_]{1,12}=\s*(?:followed by|\+|with|then append|\{)[^\n]{0,40}?"
        r"\b(?:user'?s?|conversation|messages|chat|history|secrets?|prompt|password)",
        keys=gate_keys("http"),
    ),
    pattern(
        "exfiltration",
        0.85,
        r"\binclude (?:the result|it|them|the output) in (?:a |the )?(?:markdown )?"
        r"(?:link|image|url)",
        keys=gate_keys("include"),
    ),
    pattern(
        "tool_call",
        0.25,
        r"\b(?:call|invoke|use|run|execute|trigger|open)\b (?:the |your |my )?[\w.]+ "
        r"(?:tool|function|plugin|api|integration|interpreter|browser)\b",
        r"\btool access\b|\bas an agent\b",
        r"\b(?:use|open|run) (?:the |your )?(?:shell|terminal|browser|console|command line)\b",
        keys=gate_keys("call,invoke,use,run,execute,trigger,open,tool,agent"),
    ),
    pattern("tool_call", 0.25, r"\b[a-z]+_[a-z_]+\([^)\n]{0,80}\)", keys=("_",)),
    pattern(
        "dangerous_action",
        0.45,
        r"\brm\b[\s'\",]{1,4}-rf|drop table|\bdelete (?:all|every)\b|/etc/(?:passwd|shadow)|"
        r"~/\.ssh|environment variables|\bapi keys?\b|curl [^|\n]{0,100}\|\s*(?:sh|bash)\b|"
        r"os\.system|new admin (?:user|account)|authentication is disabled|\bbackdoor\b|"
        r"gift cards?|authorized_keys|push --force|force[- ]push|subprocess\.(?:run|call|popen)",
        keys=gate_keys(
            "-rf,drop table,delete,/etc/,.ssh,environment variables,api key,curl,os.system,admin,"
            "authentication,backdoor,gift card,authorized_keys,force,subprocess"
        ),
    ),
    pattern(
        "dangerous_action",
        0.45,
        r"\b(?:send|transfer|wire|pay)\b[^.\n]{0,20}?[$€£]\s?\d",
        keys=gate_keys("$,€,£"),
    ),
    pattern(
        "dangerous_action",
        0.45,
        r"\b(?:delete|drop|remove|wipe|destroy|purge|refund|transfer|pay)_\w+|\.env files?\b|"
        r"\bget_\w*(?:secret|password|key|token|credential)\w*|select \* from \w*(?:credit|card|"
        r"password|user|secret|account)",
        keys=gate_keys("_,.env,select *"),
    ),
    # -- claimed authority -------------------------------------------------------
    pattern(
        "authority",
        0.8,
        r"\b(?:safety|content|moderation) (?:rules|filters?|polic(?:y|ies)|layer|restrictions|"
        r"guidelines)(?: are| is| have been| has been)? (?:now )?(?:suspended|disabled|off|"
        r"offline|lifted|removed|revoked|deprecated)\b",
        r"\b(?:moderation|safety layer) is (?:now )?disabled\b",
        r"\b(?:the )?rules are (?:now )?(?:off|suspended|disabled|lifted)\b",
        keys=gate_keys("safety,content,moderation,rules are"),
    ),
    pattern(
        "authority",
        0.75,
        r"\byou(?: are|'re)(?: now)? (?:allowed|permitted|authori[sz]ed|free) to (?:\w+ ){0,2}"
        r"(?:restricted|forbidden|prohibited|banned|anything|everything|any question|all "
        r"questions|ignore|bypass|break)",
        r"\byou (?:can|may) (?:now )?(?:share|reveal|disclose|tell me|give me) (?:\w+ )?"
        r"(?:confidential|internal|private|secret|restricted|classified)\b",
        keys=gate_keys("you are,you're,you can,you may"),
    ),
    pattern(
        "authority",
        0.45,
        r"\bi(?:'m| am) (?:your|the|an?) (?:developer|creator|admin|administrator|owner|operator)",
        r"\b(?:authori[sz]\w*|permission|allowed|clearance|privileges?)\b[^.\n]{0,40}?\b(?:ignore|"
        r"bypass|disable|override|suspend|unrestricted|restricted questions|unlock)",
        r"\b(?:override|secret|unlock|admin) (?:code|token)\b|\bunlock unrestricted\b",
        r"\bthis is (?:the )?(?:system administrator|admin|developer|operator)\b",
        keys=gate_keys(
            "i'm,i am,authori,permission,allowed,clearance,privilege,code,token,unlock,this is"
        ),
    ),
    pattern(
        "decode_and_follow",
        0.45,
        r"\b(?:decode|decrypt|reverse|unscramble|join|combine|concatenate|put)\b[^\n]{0,60}?"
        r"\b(?:and|then|,) (?:follow|execute|obey|do (?:it|that|what)|perform|carry (?:it )?out|"
        r"comply|run|act on|treat)",
        r"\b(?:execute|obey|follow) the decoded\b|\bexecute the decoded text\b",
        r"\bperform the resulting (?:command|instruction)|\bfollow (?:the|that) sentence\b",
        keys=gate_keys(
            "decode,decrypt,reverse,unscramble,join,combine,concatenate,put,resulting,sentence"
        ),
    ),
)

# Spelled-out runs have no spaces left ("ignoreallpreviousinstructions").
SPELLED_PATTERNS: tuple[Signal, ...] = (
    pattern(
        "override",
        0.9,
        r"(?:ignore|disregard|forget|bypass|override)(?:all|any|the|your|every|my)?"
        r"(?:previous|prior|above|earlier|safety|system)?(?:instructions?|rules|guidelines|"
        r"prompt|directions|filters?|andsay)",
    ),
    pattern(
        "extraction",
        0.9,
        r"(?:reveal|print|show|output|repeat)(?:me)?(?:your|the)(?:system|hidden|initial|secret)?"
        r"(?:prompt|instructions)",
    ),
    pattern("jailbreak", 0.9, r"developermode|doanythingnow|jailbr(?:eak|oken)"),
)
#: Disguises found while normalising: weak evidence that adds to the rest.
FLAG_WEIGHTS: dict[str, float] = {
    "tag_chars": 0.4,
    "homoglyph": 0.25,
    "zero_width": 0.1,
    "spaced": 0.1,
}
