"""The cue lexicon of flows/safety.py: regular expressions with weights, grouped by the kinds of CARE.md.

A cue of weight 2 or more is enough on its own to flag self-harm; weight-1 cues (ambiguous words such as
撑不住, 我要走了, 对不起大家) count only together. Patterns run on text already normalised by
`safety.normalise` (NFKC, lower case, a small traditional → simplified map) and with the 死 idioms of
`IDIOMS` blanked out, so they are written in simplified characters only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from re import _constants, _parser  # type: ignore[attr-defined]
from typing import Any


@dataclass(frozen=True)
class Cue:
    name: str
    weight: int
    pattern: re.Pattern[str]
    unless: re.Pattern[str] | None = None  # the cue does not count when this is in the same sentence
    # characters of which every match holds at least one (found from the pattern itself): a text with none of
    # them cannot match, and checking that is far cheaper than the cue's own scan
    needs: frozenset[str] | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        chars = _needed(_parser.parse(self.pattern.pattern, self.pattern.flags))
        object.__setattr__(self, "needs", frozenset(chars) if chars else None)

    def may_match(self, chars: set[str]) -> bool:
        """False when a text made of `chars` cannot hold a match."""
        return self.needs is None or not self.needs.isdisjoint(chars)


def prefilter(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """A character class of which every match of `pattern` holds one character (None when none is found): where
    it finds nothing, the pattern cannot match."""
    chars = _needed(_parser.parse(pattern.pattern, pattern.flags))
    return re.compile("[" + "".join(map(re.escape, sorted(chars))) + "]") if chars else None


# Characters too common in any message to be worth a pre-check (a set of rarer characters is chosen instead).
_COMMON = set("我了不是的一有在人这个你他她们就也要想么没说好去来到吗吧呢啊都还会能")


def _needed(item: Any) -> set[str] | None:
    """A set of characters of which every match of a parsed pattern (re._parser) holds one; None when none is
    found. Sound by construction: literals, classes of literals, branches (the union over the alternatives),
    groups, and repeats of at least once; lookarounds and anything else give nothing."""
    if isinstance(item, _parser.SubPattern) or isinstance(item, list):
        found = [c for c in map(_needed, item) if c]
        return min(found, key=lambda c: (sum(10 if ch in _COMMON else 1 for ch in c), sorted(c)), default=None)
    op, av = item
    if op is _constants.LITERAL:
        return {chr(av)}
    if op is _constants.IN:
        if all(o is _constants.LITERAL for o, _ in av):
            return {chr(a) for _, a in av}
        return None
    if op is _constants.BRANCH:
        alts = [_needed(alt) for alt in av[1]]
        return set().union(*alts) if all(alts) else None  # type: ignore[arg-type]
    if op is _constants.SUBPATTERN:
        return _needed(av[3])
    if op in (_constants.MAX_REPEAT, _constants.MIN_REPEAT, _constants.POSSESSIVE_REPEAT):
        return _needed(av[2]) if av[0] >= 1 else None
    if op is _constants.ATOMIC_GROUP:
        return _needed(av)
    return None


def _cues(family: str, rows: list[tuple[int, str]], unless: str | None = None) -> list[Cue]:
    guard = re.compile(unless) if unless else None
    return [Cue(f"{family}{i}", w, re.compile(p), guard) for i, (w, p) in enumerate(rows)]


# Traditional characters that matter for the cues, as (traditional, simplified) pairs.
_PAIRS = (
    "殺杀著着沒没藥药橋桥樓楼說说媽妈麼么幾几顆颗會会讓让見见頂顶結结氣气車车軌轨邊边斷断遺遗書书別别這这個个們们對对謝谢後后裡里過过還还為为夠够無无時时點点歲岁壓压農农繩绳開开暈晕醫医腦脑風风嘔呕應应動动"
    "傷伤燒烧從从樣样頭头臉脸話话護护機机歡欢愛爱難难覺觉撐撑記记懶懒陽阳臺台來来嗎吗麽么寫写錢钱帶带給给與与紀纪錄录電电視视劇剧聞闻報报廣广場场遊游戲戏攢攒準准備备剛刚經经淚泪憂忧鬱郁獨独處处該该啟启關关"
    "門门鎖锁絕绝撫抚喪丧禮礼靈灵陰阴間间閻阎羅罗爺爷孫孙兒儿煩烦顧顾幫帮遠远樂乐輕轻鬆松嚇吓凍冻熱热餓饿悶闷醜丑擠挤窮穷饞馋鹹咸鬧闹厲厉驚惊險险嚴严緊紧搶抢嘆叹癱瘫瘓痪癲癫癇痫壞坏發发燙烫損损題题貴贵塊块"
    "錯错罷罢於于萬万雖虽聽听請请問问診诊買买賣卖喫吃憶忆亂乱夢梦殘残廢废餘余種种離离誰谁讀读懷怀憐怜勞劳劑剂鐵铁懸悬庫库層层壩坝區区網网現现講讲舊旧債债實实願愿囑嘱穩稳決决盡尽脈脉劃划幹干義义勁劲負负擔担"
    "贅赘終终輩辈歸归極极將将兩两蟲虫掛挂樑梁臥卧漢汉術术體体識识進进隻只條条傳传達达專专業业東东絲丝滅灭紮扎綁绑線线鋼钢鐘钟閉闭閒闲隊队雞鸡顯显飯饭飲饮養养館馆騙骗驗验鬥斗魚鱼黃黄齊齐齒齿龍龙婦妇親亲鄰邻"
    "臟脏撥拨師师號号碼码單单優优費费標标"
)
TRAD = str.maketrans(_PAIRS[0::2], _PAIRS[1::2])

# Pinyin, abbreviations and homophone typos that people write instead of the characters (run after lower case
# and the removal of tone marks): 想si / 不想huo了 / zs / 自sha / 紫砂 / 自鲨 / 不相活.
_HAN = r"[\u4e00-\u9fff]"
SLANG: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<![a-z])(?:zisha|zi sha|zs)(?![a-z])|自 ?sha(?![a-z])|紫砂(?![壶锅杯茶泥煲罐])|自鲨|自刹|自沙"), "自杀"),
    (re.compile(rf"(?<={_HAN})si(?![a-z])|(?<![a-z])si(?=[了啦吧算])"), "死"),
    (re.compile(rf"(?<={_HAN})huo(?![a-z])"), "活"),
    (re.compile(r"不相活"), "不想活"),
]

# Exaggerations and set phrases built on 死 (CARE.md: not a crisis). Each match is blanked before the cues run.
_ADJ = ("冷|热|累|饿|困|渴|烦|急|气|吓|笑|(?<!安)乐|美|馋|闷|无聊|忙|臭|咸|香|甜|辣|苦|疼|痛|吵|丑|憋|冻|晒|挤|坑|愁|穷"
        "|羡慕|嫉妒|哭|丢人|丢脸|尴尬|麻烦|难受|难看|难吃|恶心|肉麻|心疼|后悔|懒|胖|撑|烫|激动|高兴|开心|爽|折腾"
        "|磨蹭|攰|闷热|忙碌|想你|等|熏|呛|堵|急人|烦人|气人|吓人|闷人|吵人|冻人|热人|累人|笑人|晒人")
IDIOMS = re.compile(
    rf"(?:{_ADJ})(?:得)?(?:要)?死(?:了|啦|咯|喽|啰|人|我|你|他|她|掉|的)?"
    r"|得(?:要|半)死|个半死|死(?:贵|沉|硬|倔|脑筋|机|活|心眼|胡同|角|鬼|党|磕|缠|守|撑|要面子)"
    r"|想死(?:你|您|他|她|大家|宝贝|我了)|好死不如赖活着|死不死|该死的|要死啦|生死攸关"
    r"|dying to|killing me|to death"
)
# Not blanked: "想死的心都有了" is a common hyperbole but counts as one weak cue (see HYPERBOLE below).

# A short window before a cue: the cue is denied ("我可不会想不开", "我从来没想过死").
NEGATION = re.compile(r"(?:不会(?!再)|不可能|从没|从来没|从来不|从不|才不|绝不|决不|没有|哪舍得|怎么会|不至于"
                      r"|别担心|放心)[^，。！？]{0,3}$")
# A bare 不 / 没 just before denies only a wish or intent ("我不想死", "没想过死"), not "死了就不拖累人".
NEGATION_BARE = re.compile(r"[不没]$")
WISH = re.compile(r"想|要|会|打算")
# Someone else's story or the past, in the same clause: fiction, news, long ago (CARE.md: distance).
DISTANCE = re.compile(r"电视|电影|小说|新闻|报纸|广播|抖音|快手|视频|纪录片|戏里|剧里|剧中|书上|书里|游戏|故事|节目"
                      r"|听说|网上|以前|从前|年轻时|年轻的时候|那时候|那时|当年|小时候|多年前|几年前|早年|曾经"
                      r"|评书|相声|戏曲|历史|课本|课上|主人公|主角|男主|女主|角色|情节|剧情|古人")
FIRST_PERSON_NOW = re.compile(r"我(?:也|真|现在|今天|今晚)?(?:想|要)|现在|最近|这几天|今天|今晚"
                              r"|我[^，。！？]{0,4}(?:查|搜|问)")

# What people ordinarily do at a rooftop, a river or a railway: a sentence that says it is not "being there now".
_MUNDANE_PLACE = (r"钓鱼|散步|晒|修|玩|跳舞|锻炼|遛|拍照|种|乘凉|纳凉|看风景|日出|上班|干活|打扫|收(?:衣|被)|洗|买|卖"
                  r"|吃饭|喝茶|等人|等你|接(?:人|孩子|孙|我)|来接|送货|天堂公园|漏|坏|安装|装修|搬|烧烤|野餐|划船|游泳|旅游|广场舞|逛|堵车"
                  r"|车站|下车|跑步|走路|市场|超市|店|公园|广场|学校|医院|路上|开车|骑车|车上|等车|工作|值班|度假|酒店|民宿"
                  r"|小区|社区")

# Ending or cancelling a request (CARE.md: not a crisis). The rules have no cue for it; it keeps the model, which
# has seen 结束这一切, from reading 我想结束这个请求 the same way.
ENDING_A_REQUEST = re.compile(r"(?:结束|取消|撤|关闭|关掉|终止|停止|删掉|不需要|不用|不要)[^。！？]{0,8}"
                              r"(?:请求|单子|订单|申请|求助|预约|对话|服务|派人)"
                              r"|(?:请求|单子|订单|申请|求助|预约|对话|服务)[^。！？]{0,6}"
                              r"(?:结束|取消|撤|关闭|关掉|终止|不需要|不用|不要)")

# What a knife, a rope, gas or a pesticide is ordinarily for ("不是打虫子用的" is not).
_ORDINARY_USE = (r"(?<!不是)(?<!不是给)(?<!不是打)(?<!不是用来)(?:老鼠|耗子|虫|蟑螂|蚊|苍蝇|杂草|庄稼|菜地|果树|做饭|炒菜|烧水"
                 r"|洗澡|切菜|杀鸡|杀鱼|师傅|谢谢|灶|打不着|捆|晾|搬家)")

SELF_HARM: list[Cue] = [
    *_cues("intent", [
        (2, r"自杀|自尽|自刎|轻生|寻短见|短见|自我了断|自行了断|了断(?:了)?自己|了结(?:了)?自己|结束(?:掉)?(?:我)?自己"
            r"|一了百了|一死了之|安乐死"),
        (2, r"不(?:想|要|愿|愿意)(?:再)?活(?!动|跃|泼|儿|计|血|在别人|在他人|成|得像)|不活了|活(?:不|唔|冇)(?:下|落)去|活不成了|活够了|活腻|活唔落去"
            r"|唔想(?:再)?活|(?:唔|不)(?:想|要|愿)(?:再)?(?:生存|活|捱)(?:落|下)去|不想(?:再)?(?:在了|存在)|独活|没脸(?:再)?活|没法活了"),
        (2, r"想(?:过|去)?死|要去死|去死|寻死|求死|死(?:了|掉)?(?:算了|拉倒|得了|干净|痛快|倒好|最好)|死了好|死了就好"
            r"|(?:还)?不如(?:早点)?死|让我死|生不如死|死(?:了|掉)?(?:算球|算逑|球了)|死了?(?:比较|更|会更|才)(?:好|轻松|解脱|省心)"
            r"|(?:我|还是|不如|干脆)走了?(?:干净|痛快|倒好)"),
        (2, r"结束(?:自己的|我的)?(?:生命|这一切|一切|这条命)|结束[^，。！？]{0,6}(?:一生|此生|这辈子|人生|残生)|了结(?:了)?(?:此生|一生|残生|生命)|(?:想|要|只想)解脱|命[^，。！？]{0,3}不(?:想)?要了"
            r"|不(?:想|要)(?:再)?(?:要|留着)?(?:这条|我这条|我的)(?:老)?命"),
        (2, r"见阎王|阎王爷.{0,6}收|收走|收了我|见马克思|去见(?:祖宗|老祖宗|佛祖)"),
        (2, r"想不开|做傻事|不想(?:再)?(?:留在|待在|在)这(?:个)?世"),
        (2, r"(?:喝|吃|吞|跳|死|走)了?算了"),
        (1, r"了断|解脱"),
        (1, r"想好了|想清楚了|决定了|下定决心"),
        (1, r"(?:想|要)结束(?:它|这一切|一切)(?!吧)"),
    ]),
    *_cues("euphemism", [
        (2, r"睡过去.{0,3}(?:别|不要|不|再也不|永远不)(?:再)?(?:醒|起来)|不(?:想|要|用)(?:再)?醒|别醒|再也不(?:醒"
            r"|起来)"
            r"|永远(?:不|别)醒|一睡不醒|永远睡(?:过)?去|不(?:想|要)再?睁(?:开)?眼|不要醒来"),
        (2, r"想(?:要)?(?:彻底|永远)?消失(?!一会|一下|几天|一阵|一段)|(?:这个|这)?世界(?:上)?消失|离开(?:这个)?世界|离开人世|离开人间|另一个世界|去天堂(?!公园|路|街|小区|酒店|餐厅|超市|影|商场)"
            r"|那个世界"),
        (2, r"(?:早点|该|准备)上路|(?:人生|这辈子|日子|命)(?:也)?(?:就)?到头|这辈子就(?:到这|这样了|算了)"),
        (2, r"让我走吧|别救我|不要救我|不用救我|别管我了|不用(?:再)?管我了|以后(?:都)?不用管我"),
        (2, r"(?<![他她妈爸伴人们爷奶公婆子儿女])永远(?:地)?(?:睡|闭上眼睛?|离开|消失|休息)(?!了?我们|了?大家)|(?:去|到)[^，。！？]{0,8}(?:没有痛苦|不会痛|回不来|不用回来|再也不回来)的地方"
            r"|再也(?:不会)?回不来|再也不回来|我(?:就)?(?:不存在|不在这个世上)了(?![吗嘛么?])|不会再(?:麻烦|拖累|打扰)任何人"
            r"|(?:人生|生命|这辈子)(?:的)?最后一(?:个晚上|夜|天)|我(?:的)?最后一(?:个晚上|夜)"),
        (1, r"最后一(?:个晚上|夜)"),
        (1, r"另一个地方"),
        (2, r"没(?:有|了)?我[^，。！？]{0,6}(?:更好|会好|好过|轻松|清净|省心)|少了我[^，。！？]{0,6}(?:更好|好过|轻松|清净)"
            r"|(?:世界|世上|这个家|家里|谁都|谁也|没有人)[^，。！？]{0,2}不(?:再)?需要我(?!做|帮|去|来|买|干|照顾|接|送|操心)"),
        (1, r"准备好?(?:离开|走)了|想离开了"),
        (2, r"(?:不如|还是|干脆)早点(?:走|去|死)"),
        (1, r"醒不来|早点(?:走|死|去|解脱)|(?:想|要)去那边|消失"),
    ]),
    *_cues("burden", [
        (2, r"(?:活着|活起|活在世上|人生|生命)[^，。！？]{0,5}(?:没|冇|莫|无|什么|啥|么子|甚么|何)(?:得|有)?[^，。！？]{0,2}"
            r"(?:意思|意义|价值|劲|盼头|用|奔头)"
            r"|(?:活着|活起)[^，。！？]{0,6}(?:意思|意义|价值|盼头|奔头)[^，。！？]{0,3}(?:都)?(?:没|冇|莫)"
            r"|活着(?:真|也|还)?(?:没|没有)(?:意思|意义|劲|盼头|用|奔头)|活着有(?:什么|啥|甚么)(?:用|意思|意义|劲"
            r"|盼头)"
            r"|活着(?:还)?(?:干嘛|干什么|干啥|做什么|为了什么|还有什么|还有啥)|活着就是(?:受罪|浪费|拖累|添麻烦)"),
        (2, r"没(?:有)?(?:盼头|奔头|指望)|看不到(?:任何|一点|一丝)?希望|没有(?:任何|一点|一丝)希望|(?:日子|这日子).{0,6}不想过"),
        (2, r"累赘|(?:是|就是|成了)(?:个|家里的|他们的|孩子的|大家的)?(?:拖累|负担|包袱|废人|多余的人)"
            r"|活着(?:净|只会|光|就是)?(?:拖累|给人添麻烦|添麻烦)|(?:世上|世界上|家里).{0,4}多余"
            r"|活着[^，。！？]{0,6}(?:添堵|添乱|拖累|负担|累赘|废物|多余|碍眼)"),
        (2, r"消失了?也没人|我(?:哪天|要是|如果|万一)?(?:死了|不在了)(?!都|也)|我(?:哪天|要是|如果|万一)没了|(?:她|他|俺)(?:死了|不在了)(?:就|孩子|你们|大家"
            r"|家里)"),
        (1, r"活着[^，。！？]{0,3}(?:累|苦|没劲|受罪)|活受罪|没(?:有)?希望|绝望|熬不下去|撑不下去|挺不下去|过不下去"
            r"|熬不住|撑不住|扛不住|熬不到头"),
        (1, r"拖累|添麻烦|废人|没人(?:在乎|需要|管)我|谁也不需要我|死活|受够了|等死|浪费粮食|这边太苦"),
        (1, r"不想再(?:拖累|连累)|再也不(?:会)?(?:拖累|连累)|连累"),
        (1, r"(?:你们|孩子们?|儿女|大家|家里人?)(?:就)?(?:都)?(?:轻松|解脱|省心|不用操心)"),
    ]),
    *_cues("method", [
        (3, r"(?:吃|喝|吞)(?:多少|几)[^，。！？]{0,6}(?:死|走|没命|致死|致命|一睡不醒|醒不来|睡过去)"
            r"|(?:安眠药|安定|药|农药|敌敌畏|百草枯)[^。！？]{0,8}(?:多少|几)[^，。！？]{0,6}(?:会死|致死|致命|没命"
            r"|就走|才会走|能走)"),
        (3, r"几楼.{0,8}(?:死|不疼|不会疼|没救|就走)|跳下去.{0,8}(?:死|不疼|不会疼|没救|必死)"),
        (2, r"(?:怎么|怎样|如何)(?:死|自杀)(?!的)|死法|(?:不痛苦|没有痛苦|不疼|不痛)的?(?:死|走|死法|办法)"),
        (2, r"割(?:哪|手腕|腕|脉|动脉|自己)|割了?(?:手腕|腕)"),
        (2, r"(?:攒|囤|藏|收集)(?:了|着|起来)?[^。！？]{0,8}(?:安眠药|安定|药|农药|老鼠药|敌敌畏|百草枯|绳)"
            r"|(?:安眠药|安定|药|农药|老鼠药|敌敌畏|百草枯)[^。！？]{0,10}(?:攒|存着|存起来|囤|藏起来|藏在)"),
        (2, r"(?:准备|打算)(?:一次|一起)?(?:吃完|全吃|吞)|(?:一次|一起|一口气|全部)(?:吃|吞|喝)(?:完|下去|掉|光)"),
        (3, r"喝(?:了)?[^，。！？]{0,4}(?:农药|敌敌畏|百草枯|老鼠药|鼠药|除草剂|杀虫剂)|吃(?:了)?(?:老鼠药|鼠药)"),
        (3, r"上吊|吊死|悬梁|卧轨|烧炭"),
        (2, r"百草枯|绳子?[^。！？]{0,8}(?:挂在哪|挂在房梁|吊|套|结实|系好|脖子)|把煤气(?:打开|开)|开着煤气睡"
            r"|煤气[^。！？]{0,6}(?:睡觉|不会醒|醒不|死)|煤气(?:我)?(?:已经)?(?:打开|开着|开)了"
            r"|下不去手|下不了手|不是[^，。！？]{0,4}(?:老鼠|虫|耗子|蟑螂|杂草)"
            r"|绳子?[^。！？]{0,8}挂(?:在|到)?(?:门框|房梁|梁上|横梁|门上|吊扇|窗框)"
            r"|(?:说|闹|吵|嚷|扬言|威胁|想)[^，。！？]{0,2}喝药|喝药(?:自杀|死)"),
        (2, r"(?:老鼠药|鼠药|农药|安眠药|敌敌畏|百草枯|除草剂|杀虫剂|安定)[^。！？]{0,12}(?:想|要|打算|准备)(?:自己)?(?:吃|喝|吞)"
            r"|(?:想|要|打算|准备)(?:自己)?(?:吃|喝|吞)[^，。！？]{0,4}(?:老鼠药|鼠药|农药|敌敌畏|百草枯|除草剂|杀虫剂)"),
        (1, r"(?:好几|几|很多|一大|好多|十几|几十)(?:盒|瓶|板|包)(?:的)?(?:安眠药|安定|药)|分(?:几|好几)(?:家|次)买"),
        (2, r"跳(?:楼|河|江|海|湖|桥|崖|井|水库)|往下跳|从[^，。！？]{0,6}(?:楼|桥|窗|阳台|天台|顶)[^，。！？]{0,3}跳"),
        (1, r"跳下去|想跳|要跳|敌敌畏|农药|安眠药"),
        (2, r"(?:安眠药|安定|药)[^，。！？]{0,4}(?:睡过去|一睡不醒|不再醒|醒不来)"
            r"|(?:想|要)(?:去)?(?:撞车|被车撞|往车上撞|冲到马路上|冲到车前)"),
        (1, r"(?:[五六七八九十百几]+|\d{2,}|好多|很多|一大把)(?:多)?(?:片|颗|粒)(?:的)?(?:安眠药|安定)"),
    ]),
    # Getting a means ready: not when the sentence says what the knife or the poison is ordinarily for.
    *_cues("method_prep", [
        (2, r"(?:药|绳子|绳|农药|刀|炭|老鼠药|敌敌畏|百草枯)[^。！？]{0,6}(?:准备好|备好|买好|买回来|磨好|系好|挂好|想好)"
            r"|(?:想|要|打算|准备)(?:把)?(?:开|打开)煤气"),
    ], unless=_ORDINARY_USE),
    *_cues("place_now", [
        (2, r"(?:我|人|他|她|爸|妈|爷|奶|伴|儿子|女儿|孩子|老人|大爷|阿姨|大妈|邻居)(?:现在|已经|正|半夜|一直|还|又)?"
            r"(?:在|站在|坐在|爬到|爬上|到了|来到)[^，。！？]{0,4}(?:楼顶|顶楼|天台|房顶|屋顶"
            r"|阳台边|窗台|窗户外|桥上|大桥|桥边|河边|江边|海边|湖边|水库|河里|江里|铁轨|轨道|铁路|悬崖|崖边|高楼|水塔"
            r"|河堤|江堤|楼边|栏杆)(?!下|对面|附近|旁边|那边的|边上的|的(?:那|这)?(?:家|个|条)|路|小区|社区|公园|市场|站)"),
    ], unless=_MUNDANE_PLACE),
    *_cues("place", [
        (1, r"(?:在|站在|坐在|爬到|爬上|到了|来到|人在)[^，。！？]{0,4}(?:楼顶|顶楼|天台|房顶|屋顶|阳台边|窗台|窗户外"
            r"|桥上|大桥"
            r"|桥边|河边|江边|海边|湖边|水库|河里|江里|铁轨|轨道|铁路|悬崖|崖边|高楼|水塔|河堤|江堤)"),
        (1, r"想下去|不想回(?:去|家)|不想下(?:去|来)|不肯下(?:来|去)|往前(?:走)?一步|往里(?:面)?走|等火车"),
        (2, r"栏杆外|(?:窗|阳台|楼)(?:户)?外(?:面|边)?(?:坐着|站着)|鞋(?:子)?(?:已经)?脱了"),
    ], unless=_MUNDANE_PLACE),
    *_cues("farewell", [
        (2, r"遗书|遗言|绝笔|永别|诀别|来世|来生|先走一步|下辈子(?:再|报答|见)"),
        (2, r"(?:交代|安排|办|处理)(?:好)?.{0,3}后事|后事.{0,6}(?:交代|安排|办)(?:好|完)"),
        (2, r"以后(?:也|都|再也)?用不(?:上|着)|没(?:什么|啥|有)?牵挂|了无牵挂|(?:安心|放心)(?:地)?走"),
        (2, r"看到这封信|留了(?:一)?封信|留下(?:一)?封信|再见了?[^，。！？]{0,2}(?:这个)?世界|告别(?:这个)?世界"
            r"|(?:这个)?世界[^，。！？]{0,2}再见"),
    ]),
    # Weaker farewell signs: they count only together, and not in a sentence about a move, a trip or a hospital
    # stay ("谢谢大家这些年的照顾，我下个月搬去儿子那边住了").
    *_cues("farewell_weak", [
        (1, r"后事|遗嘱|下辈子"),
        (1, r"最后一次|最后(?:给|跟|和)你们|最后麻烦"),
        (1, r"我(?:要|先)?走了"),
        (1, r"不能(?:再)?照顾|(?:以后|再也)(?:没法|不能)?照顾不了"),
        (1, r"拜托.{0,8}照顾"),
        (1, r"(?:以后|再也)?(?:你们|你)?(?:就)?不用(?:再)?(?:为我)?(?:照顾|操心|担心|惦记|伺候)我?"),
        (1, r"我(?:会)?自己(?:来)?解决"),
        (2, r"以后(?:你们)?(?:就|都)?不用(?:再)?(?:照顾|管|惦记)我了"),
        (1, r"照顾好(?:自己|他们|孩子|爸|妈)|(?:你们|大家)(?:多)?保重"),
        (1, r"(?:存折|银行卡|房产证|钥匙)[^。！？]{0,8}(?:给|交给|留给|分给|放在)|把(?:存折|银行卡|房子)|密码是"
            r"|(?:存折|银行卡|卡)(?:的)?密码"
            r"|把[^，。！？]{0,6}(?:戒指|首饰|金|存折|衣服|东西|钱|手表|宝贝|猫|狗)[^，。！？]{0,4}(?:留给|送给|分给|交给|送人|分了)"
            r"|(?:都|全|全部)(?:转给|留给|分给|送给|交给|送人|分给)"),
        (1, r"以后(?:也|都|再也)?[穿戴花住吃]不(?:上|着)了|(?:你们|你)(?:记得)?(?:去|来)(?:拿|取)|帮我转交|(?:就|那就)这样吧"),
        (1, r"信[^，。！？]{0,4}(?:已经)?写好了"),
        (1, r"(?:放在|压在|留在)(?:桌上|桌子上|枕头|床头|抽屉)"),
        (1, r"谢谢[^。！？]{0,10}(?:这些年|这么多年|多年|一直|这段时间|这段日子)|(?:这些年|这么多年|多年来?|一直以来)[^。！？]{0,6}"
            r"(?:谢谢|感谢)"),
        (1, r"永远(?:记得|忘不了|爱)你们"),
        (1, r"对不起(?:大家|你们|孩子|儿子|女儿|她|他|妈|爸)|(?:妈妈?|爸爸?|孩子们?|儿子|女儿|老伴|大家|你们)[，,]?对不起"),
        (1, r"再见了|永远再见"),
        (1, r"(?:电话|手机)(?:也)?(?:打不通|不接|关机)|联系不上|找不到(?:人|他|她)"),
        (1, r"不会再(?:麻烦|拖累|打扰)|不用(?:再)?(?:找|等|惦记)我"),
    ], unless=r"搬(?:去|到|家|走)|出远门|旅游|旅行|出差|住院|出院|回老家|养老院|下次|明天见|回头见|再聊|改天|一会儿?见"
              r"|回来照顾|保姆|护工|派人|取消|单子"),
    *_cues("after", [
        (3, r"(?:吃|吞|喝)(?:了|下|掉)[^，。！？]{0,3}(?:(?:[一二两三四五六七八九十几百半整大]+|\d+)(?:瓶|板|盒|把)"
            r"|(?:[五六七八九十几百]+|好几十|[5-9]|\d{2,})(?:多)?(?:片|颗|粒))"
            r"[^，。！？]{0,3}(?:安眠药|安定|药|农药|敌敌畏|百草枯|老鼠药)"),
        (2, r"把[^，。！？]{0,4}药[^，。！？]{0,3}(?:全|都|一次|一起)(?:吃|吞|喝)|吞药|吞(?:了|下)(?!一颗|一片|一粒|两|半)[^，。！？]{0,4}药"
            r"|药[^，。！？]{0,4}吞了"),
        (2, r"割(?:了|破)?(?:手腕|腕|自己|脉)|划(?:了|破)?(?:手腕|自己|几刀|好几刀)|(?:手腕|手臂|胳膊"
            r"|手上)[^，。！？]{0,4}"
            r"(?:划|割)|刀割的伤|划了才舒服"),
        (1, r"吃了(?:好多|很多|一堆)药"),
        (3, r"(?:吃|吞|喝)(?:了|下|掉|下去)[^。！？]{0,8}(?:[整半几十百一二两三四五六七八九]|\d)+(?:瓶|盒|板|把)"
            r"[^，。！？]{0,3}(?:安眠药|安定|药|农药|敌敌畏|百草枯|老鼠药|除草剂)"
            r"|(?:瓶|盒|板|把)(?:的)?(?:安眠药|安定|药|农药|敌敌畏|百草枯|老鼠药)[^，。！？]{0,4}(?:都|全|全部)?(?:吃|吞|喝)"
            r"(?:了|下|掉|光|完)"),
    ]),
    *_cues("follow", [
        (2, r"(?:走了|没了|去世|过世|不在了|死了|离开了)[^。！？]{0,20}(?:跟着?(?:他|她|你|爸|妈|老伴)?(?:去|走)"
            r"|跟[^，。！？]{0,3}"
            r"一起(?:去|走)|(?:去|想|要)陪(?:他|她|你)|下去(?:找|陪)|去找(?:他|她|你)|去见(?:他|她))"),
        (1, r"跟着?(?:他|她|你)(?:去|走)|(?:想|要)?去陪(?:他|她|你)|下去(?:找|陪)(?:他|她|你)"),
        (1, r"等等我"),
        (1, r"很快就(?:来|去)(?:找|陪)"),
        (1, r"我(?:这就|马上|很快|现在)?(?:就)?(?:来|去)(?:陪|找)你(?:了|啦)"),
        (1, r"^(?:妈妈?|爸爸?|老伴|老头子?|老婆子?|孩子|儿子|女儿|闺女)[，,]"),
        (1, r"在天(?:上|堂)"),
        (1, r"(?:想|要)[^，。！？]{0,8}(?:找|陪|见)(?:我)?(?:的)?(?:爸|妈|老伴|爷爷|奶奶|他|她)"),
        (2, r"(?:陪|找|见)[^，。！？]{0,3}(?:死去|去世|过世|早走|走了|不在)的"),
    ]),
    *_cues("english", [
        (2, r"kill(?:ing)? myself|end (?:my|it) (?:life|all)|end it all|take my (?:own )?life|suicid|want to die"
            r"|wanna die"
            r"|(?:don'?t|do not) want to (?:live|be alive)|no reason to live|better off dead|goodbye forever"
            r"|this is goodbye"
            r"|saved up .{0,10}pills|overdos|slit my wrist|jump off|tired of (?:living|life)"
            r"|(?:don'?t|do not) want to wake up|never wake up|took all (?:my|the) pills|(?:be )?better off without me|can'?t go on(?:\s*$|\s*anymore|\s+like this|\s+living)|can'?t take (?:it|this) anymore"
            r"|want to end it|end it (?:tonight|today|now)"),
        (1, r"thank you for everything|goodbye|feel like dying|want to jump"),
        (1, r"on the (?:roof|bridge|edge)"),
    ]),
]
HYPERBOLE = Cue("hyperbole", 1, re.compile(r"想死的心都有"))
INSIST = Cue("insist", 1, re.compile(r"真的|不是(?:跟你)?(?:开玩笑|说着玩)|认真的|说真的|没开玩笑"))

# Medical emergencies happening now (CARE.md: 120 first). Past events and hypotheticals do not count.
MEDICAL = [
    *_cues("medical", [
        (2, r"晕倒|昏倒|晕过去|昏过去|昏迷|不省人事|倒在地上|倒地|栽倒|休克|要晕了"),
        (2, r"喘不(?:上|过)(?:气|来)|上不来气|呼吸困难|憋气|透不过气|呼吸很弱|没(?:有)?呼吸|没气了|嘴唇(?:都|发)?紫"
            r"|can'?t breathe|not breathing"),
        (2, r"(?:摔|跌|滑)(?:倒|了一跤|下来|下去|了)[^。！？]{0,10}(?:起不来|爬不起来|动不了|起唔到|站不起来|流血)"),
        (2, r"嘴歪|脸歪|口角歪|口眼歪|说话(?:不太?清|含糊|不利索)|口齿不清|半边(?:身子|身体"
            r"|脸)[^，。！？]{0,4}(?:不能动|动不了|没力|麻)"
            r"|一(?:只|边)手[^，。！？]{0,3}(?:没力|抬不起|不能动)|手抬不起来|中风|脑梗|脑溢血|脑出血|stroke"
            r"|突然[^，。！？]{0,3}(?:说不出话|不会说话|说不了话)|嘴角(?:流口水|歪)"),
        (2, r"胸口(?:剧痛|疼得|痛得|像压)|心口(?:疼得|痛得)|胸痛|心绞痛|心脏病(?:犯|发)|心梗|心肌梗|heart attack"),
        (2, r"大出血|血止不住|止不住血|流血不止|血流不止|(?:吐|咳|呕|便)血|流了(?:好多|很多|一地|一大滩)(?:的)?血"
            r"|流血[^。！？]{0,4}止不住|血[^，。！？]{0,4}(?:一直|不停|止不住|哗哗)(?:地)?(?:往外)?(?:冒|流|涌|淌)"),
        (2, r"抽搐|抽风|癫痫发作|羊癫疯|口吐白沫|眼睛(?:往上)?翻|翻白眼|seizure|抽(?:起来|过去)了|(?:烧|发烧)[^，。！？]{0,4}抽"),
        (2, r"叫不醒|叫不应|叫也不(?:答应|应)|(?:叫|喊|推|拍)[^。！？]{0,6}没(?:有)?反应|(?:奶奶|爷爷|妈|爸|老伴|老人"
            r"|外婆|外公|人)"
            r"没(?:有)?(?:反应|知觉|意识)|unconscious|unresponsive|passed out|collapsed"),
        (2, r"低血糖[^。！？]{0,8}(?:晕|抖|出汗)|吃错药|误服|中毒|高烧|烧到(?:39|40|4\d)|说胡话"
            r"|烫伤[^，。！？]{0,6}(?:一大片|起泡|大面积)"
            r"|烫伤了一大片|头痛得?要炸|剧烈头痛|从来没这么(?:痛|疼)|触电|bleeding"),
    ]),
]
# Someone swallowed something by mistake (a child took pills for sweets, an elder the wrong bottle): a poisoning
# is a medical emergency (120, the unit's coordinators), not a sign of self-harm, when nothing else in the
# message speaks of wanting to die.
ACCIDENTAL = re.compile(r"误(?:服|吃|喝|食|吞)|当(?:成|作|做)?(?:了)?(?:糖|糖果|饮料|水|酒|零食|汽水|果汁|维生素|钙片)"
                        r"|不小心(?:把[^，,。！？!?]{0,8})?(?:吃|喝|吞)|偷(?:吃|喝)|(?:吃|喝|拿)错(?:了)?"
                        r"|(?:孙子|孙女|外孙|宝宝|小孩|娃娃|幼儿|小朋友)[^，,。！？!?]{0,8}(?:吃|喝|吞)(?:了|下)")
# …but not a wish to take it ("我想把安眠药当糖吃")
WISH_TO_TAKE = re.compile(r"(?:想|要|打算|准备|干脆)[^，,。！？!?]{0,4}(?:吃|喝|吞|把)[^，,。！？!?]{0,8}(?:药|安定|敌敌畏|百草枯)")
# Past events, hypotheticals, questions about prevention: not an emergency now.
MEDICAL_PAST = re.compile(r"去年|前年|以前|之前|从前|上个?月|上周|上星期|前几年|前两天|前几天|后遗症|复查|出院|病史"
                          r"|过的|过一次"
                          r"|预防|如果|万一|假如|要是|注意什么|急救知识|培训|听说|怎么急救|应该怎么|看过了|犯过"
                          r"|中风后|中风以后")
# Said of the clause a symptom is in: the symptom is now, even after an earlier clause about the past
# ("去年做过搭桥，现在喘不上气").
PRESENT = re.compile(r"现在|今天|今早|今晚|今儿|这次|这回|又|正在|此刻|这会儿?|刚")
# A hypothetical or a question about what to do in general: not an emergency unless it also says it is happening.
HYPOTHETICAL = re.compile(r"如果|万一|假如|假设|要是|预防|注意什么|应该怎么|怎么急救|急救知识|培训")
MEDICAL_NOW = re.compile(r"突然|刚才|刚刚|快来|快叫|救命|救护车|120|马上|赶紧|怎么办|快帮|一直在?流|现在昏")
