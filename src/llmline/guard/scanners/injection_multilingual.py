"""The multilingual patterns of the prompt-injection scanner
(:mod:`llmline.guard.scanners.injection`): instruction overrides, prompt
extraction, no-limits personas and notes to the AI in Spanish, French,
German, Portuguese, Italian, Dutch, Polish, Swedish, Russian, Ukrainian,
Chinese, Japanese, Korean, Turkish, Arabic, Hindi, Indonesian and
Vietnamese.

The shipped MiniLM embedder reads English only, so for other languages these
patterns carry the scan.  Like the English ones (see
:mod:`llmline.guard.scanners.injection_patterns`) they run on normalised
text and are gated by substrings every match contains.
"""

from __future__ import annotations

from llmline.guard.scanners.injection_patterns import Signal, gate_keys, pattern

__all__ = ["ML_PATTERNS"]

_ML_VERB = (
    r"(?:ignora|ignorez|ignorate|olvida|olvídate de|descarta|omite|haz caso omiso|no sigas|"
    r"oublie|oubliez|ne tiens? pas compte|ne tenez pas compte|ne respecte plus|ne suis plus|"
    r"fais abstraction|ignorier\w*|vergiss|vergessen sie|missachte\w*|befolge nicht|esqueça|"
    r"esqueca|esquece|desconsidere|desconsidera|não siga|dimentica|dimenticate|trascura|"
    r"non seguire|non rispettare|negeer|vergeet|zignoruj|zapomnij|pomiń|ignorera|glöm|"
    r"игнорируй|проигнорируй|забудь|не слушай|не обращай внимания|не следуй|отбрось|"
    r"ігноруй|проігноруй|не зважай|abaikan|lupakan|bỏ qua|phớt lờ|quên)"
)
_ML_NOUN = (
    r"(?:instrucciones|reglas|indicaciones|directrices|normas|restricciones|órdenes|pautas|"
    r"consignes|règles|directives|anweisungen|instruktionen|regeln|richtlinien|vorgaben|"
    r"einschränkungen|befehle|vorschriften|instruções|instrucoes|regras|diretrizes|orientações|"
    r"restrições|istruzioni|regole|direttive|linee guida|restrizioni|indicazioni|instructies|"
    r"regels|richtlijnen|instrukcje|polecenia|zasady|reguły|instruktioner|regler|инструкци\w*|"
    r"правил\w*|указани\w*|ограничени\w*|інструкці\w*|instruksi|aturan|perintah|hướng dẫn|"
    r"chỉ dẫn|quy tắc)"
)
_ML_SYSPROMPT = (
    r"(?:prompt|instrucciones|mensaje|instruções|istruzioni) (?:del|do|di) sistema|"
    r"(?:prompt|invite|instructions|consignes) (?:du )?système|system-?prompt|"
    r"systemanweisung\w*|systemnachricht|systeemprompt|prompt systemowy|sistem istemi|"
    r"systemprompt|prompt sistem|sistem talimat\w*|lời nhắc hệ thống|"
    r"системн\w+ (?:промпт|инструкци\w*|"
    r"сообщени\w*)|системн\w+ інструкці\w*|系统提示|系统指令|系统消息|初始指令|初始提示|"
    r"システムプロンプト|시스템 프롬프트|تعليمات النظام|सिस्टम प्रॉम्प्ट|"
    r"(?:instrucciones|instructions|consignes|instruções|istruzioni|indicaciones) (?:ocultas|"
    r"secretas|iniciales|cachées|secrètes|initiales|iniciais|nascoste|segrete|iniziali)|"
    r"(?:versteckten|geheimen|ursprünglichen) (?:anweisungen|instruktionen)|"
    r"(?:скрыт|секретн|исходн)\w* инструкц\w*|隐藏(?:的)?(?:指令|提示)|秘密指令|隠された指示|"
    r"숨겨진 지시"
)
_ML_REVEAL = (
    r"(?:dime|muestra|muéstrame|enséñame|revela|repite|imprime|révèle|dévoile|montre|affiche|"
    r"répète|gib|zeig\w*|verrate|nenne|wiederhole|mostre|mostra|revele|repita|rivela\w*|"
    r"mostrami|dimmi|stampa|ripeti|покажи|покажіть|повтори|выведи|виведи|скажи|напиши|"
    r"tampilkan|perlihatkan|cho tôi xem|hiển thị|告诉我|显示|重复|输出|toon|vertel|pokaż|"
    r"göster|visa|أخبرني|दिखाओ|बताओ)"
)
_ML_REVEAL_AFTER = r"(?:输出|告诉|显示|重复|出力|表示|教えて|見せて|보여|알려|göster|दिखा|बताओ)"
_ML_LIMITS = (
    r"(?:restricci\w+|filtros?|reglas|límites|censura|restrictions|filtres|règles|limites?|"
    r"censure|einschränkungen|filter|regeln|grenzen|zensur|restrições|regras|restrizioni|"
    r"filtri|regole|limiti|ограничени\w*|правил|цензур\w*|фильтр\w*|обмежень|beperkingen|"
    r"ograniczeń|ética|batasan|giới hạn|hạn chế)"
)
_ML_VERB_KEYS = gate_keys(
    "ignor,olvid,descarta,omite,caso omiso,no sigas,oubli,tiens pas,tenez pas,respecte plus,"
    "suis plus,abstraction,vergiss,vergessen,missacht,befolge,esque,desconsider,não siga,dimentic,"
    "trascura,non seguire,non rispettare,negeer,vergeet,zignoruj,zapomnij,pomiń,glöm,игнор,"
    "проигнор,"
    "забудь,не слушай,не обращай,не следуй,отбрось,ігнор,не зважай,abaikan,lupakan,bỏ qua,phớt lờ,"
    "quên,忽略,无视,忽视,忘记,忘掉,理会,别管,無視,忘れ,무시,잊어,"
    "yok say,görmezden,unut,अनदेखा,भूल,تجاهل"
)
_ML_SYSPROMPT_KEYS = gate_keys(
    "sistema,système,system,systeem,sistem,hệ thống,системн,系统,初始,システム,시스템,"
    "النظام,सिस्टम,ocultas,"
    "secretas,iniciales,cachées,secrètes,initiales,iniciais,nascoste,segrete,iniziali,versteckten,"
    "geheimen,ursprünglichen,скрыт,секретн,исходн,隐藏,秘密,隠された,숨겨진"
)
ML_PATTERNS: tuple[Signal, ...] = (
    pattern(
        "override",
        0.9,
        rf"{_ML_VERB}[^.!?\n]{{0,40}}?{_ML_NOUN}",
        r"ignore[rz]? (?:toutes |tous |les |tes |vos |ces |l'ensemble des )+(?:instructions|"
        r"consignes|règles)",
        r"ignore (?:todas |todos |as |os |las |los |suas |sus |tuas )+(?:instruções|regras|"
        r"diretrizes|instrucciones|reglas)",
        r"(?:忽略|无视|忽视|忘记|忘掉|不要理会|不理会|别管)[^。！？\n]{0,12}?(?:指令|指示|说明|规则|提示|"
        r"限制|命令|设定)",
        r"(?:指示|命令|ルール|制限|지시|명령|규칙|talimat\w*|kural\w*|निर्देश\w*|नियम\w*)"
        r"[^。！？.\n]{0,20}?(?:無視|忘れ|무시|잊어|yok say|görmezden gel|unut|अनदेखा|भूल)",
        r"تجاهل[^.\n]{0,30}(?:التعليمات|القواعد)",
        keys=_ML_VERB_KEYS,
    ),
    pattern(
        "extraction",
        0.9,
        rf"{_ML_REVEAL}[^.!?\n]{{0,40}}?(?:{_ML_SYSPROMPT})",
        rf"(?:{_ML_SYSPROMPT})[^。！？.\n]{{0,12}}?{_ML_REVEAL_AFTER}",
        keys=_ML_SYSPROMPT_KEYS,
    ),
    pattern("extraction", 0.3, _ML_SYSPROMPT, keys=_ML_SYSPROMPT_KEYS),
    pattern(
        "extraction",
        0.85,
        r"(?:repite|répète|wiederhole|repita|ripeti|повтори|重复|herhaal|powtórz)[^.!?\n]{0,40}?"
        r"(?:texto|texte|text|testo|текст|文字|tekst)[^.!?\n]{0,30}?(?:anterior|arriba|"
        r"au-dessus|ci-dessus|précédent|oben|über|acima|sopra|precedente|выше|上面|以上|"
        r"hierboven|powyżej|antes de mi|avant mon|vor meiner|antes da minha|prima del mio|"
        r"до моего|在我)",
        r"(?:qué|quelles|welche|quais|quali|какие|什么)[^?？]{0,40}?(?:instrucciones|instructions|"
        r"anweisungen|instruções|istruzioni|инструкции|指令)[^?？]{0,40}?(?:recibiste|reçues|"
        r"erhalten|recebeu|ricevuto|получил|收到)",
        r"qué te dijeron antes|qu'est-ce qu'on t'a dit avant|was (?:wurde|hat man) dir vorher "
        r"gesagt|o que te disseram antes|cosa ti hanno detto prima|что тебе сказали до|"
        r"之前(?:别人)?告诉(?:了)?你什么",
        keys=gate_keys(
            "repite,répète,wiederhole,repita,ripeti,повтори,重复,herhaal,powtórz,qué,quelles,welche,"
            "quais,quali,какие,什么,dijeron,t'a dit,dir vorher,disseram,hanno detto,сказали,告诉"
        ),
    ),
    pattern(
        "jailbreak",
        0.85,
        r"(?:\bia\b|\bki\b|ии|\bai\b|asistente|assistant|assistente|ассистент|助手|モード|modo|mode|"
        r"modus|режим|personaje|modelo|modèle|modell|modello|модель)[^.!?\n]{0,40}?"
        rf"(?:sin|sans|ohne|sem|senza|без|zonder|bez|tanpa|không có|không)\s(?:\w+\s)?"
        rf"(?:ningun\w* |aucun\w* |jegliche |nenhum\w* |alcun\w* |каких-либо |всяких )?"
        rf"{_ML_LIMITS}",
        r"(?:没有|不受|无)[^。\n]{0,6}(?:任何)?(?:限制|约束|规则|审查)|制限のない|제한 없는|"
        r"modo (?:de )?desarrollador|mode développeur|entwicklermodus|modo de desenvolvedor|"
        r"modalità sviluppatore|режим разработчика|开发者模式|sin censura|sans censure|"
        r"ohne zensur|sem censura|senza censura|без цензуры|无审查|बिना किसी (?:नियम|प्रतिबंध|सीमा)|"
        r"بلا قيود|بدون قيود|hiçbir kural\w* yok|kısıtlama\w* yok",
        r"(?:eres|tu es|du bist|você é|sei|ты)[^.!?\n]{0,20}?\bdan\b|你现在是dan|"
        r"ab jetzt .{0,20}als dan",
        keys=gate_keys(
            "sin ,sans ,ohne ,sem ,senza ,без,zonder,bez ,tanpa,không,没有,不受,无,制限,제한,"
            "modo,mode,modus,"
            "modalità,режим,模式,censur,zensur,цензур,审查,बिना,قيود,yok,dan"
        ),
    ),
    pattern(
        "jailbreak",
        0.45,
        rf"(?:sin|sans|ohne|sem|senza|без|tanpa) (?:ningun\w* |aucun\w* |jegliche |nenhum\w* |"
        rf"alcun\w* |каких-либо |всяких )?{_ML_LIMITS}",
        keys=gate_keys("sin ,sans ,ohne ,sem ,senza ,без ,tanpa "),
    ),
    pattern(
        "indirect",
        0.8,
        r"(?:nota|note|hinweis|aviso|attention|achtung|примечание|сообщение|catatan|lưu ý)"
        r"[^.\n]{0,10}?(?:para|pour|an|für|per|для|untuk|cho)\s(?:la |le |l'|den |o |il |a )?"
        r"(?:ia|ki|ai|asistente|assistant|assistente|ассистент|ии)\b",
        r"致[^。\n]{0,10}(?:ai|人工智能)助手|(?:assistant ia|asistente de ia|ki-assistent\w*|"
        r"assistente (?:de )?ia|ии-ассистент)\s*[:,]",
        keys=gate_keys(
            "nota,note,hinweis,aviso,attention,achtung,примечание,сообщение,catatan,lưu ý,致,"
            "assistant,asistente,assistent,ассистент"
        ),
    ),
)
