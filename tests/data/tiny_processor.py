"""A tiny ``LlavaProcessor`` for collate tests: real CLIP image processing, a word-level tokenizer built in-test.

Only for testing batching; it has no relation to any model's vocabulary.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPImageProcessor, LlavaProcessor, PreTrainedTokenizerFast

IMAGE_TOKEN = "<image>"
# Same shape of text as llava-hf/llava-1.5's template: "USER: <image>\n{text} ASSISTANT:".
LLAVA_LIKE_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for c in message['content'] if c['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for c in message['content'] if c['type'] == 'text' %}{{ c['text'] + ' ' }}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
_CORPUS = [
    "USER: ASSISTANT: what color is the circle ? which shape is blue ? is the square to the left or right",
    "Answer the question using a single word or phrase . Reference OCR token : what does the sign say",
    "how many hours is it open what number is on the shirt what brand is the drink",
]


def build_tiny_processor(chat_template: str | None = None) -> LlavaProcessor:
    """LlavaProcessor(CLIPImageProcessor 336, word-level tokenizer with ``<image>``, patch 14)."""
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(_CORPUS, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<s>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    image_processor = CLIPImageProcessor(size={"shortest_edge": 336}, crop_size=336)
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE_TOKEN,
        chat_template=chat_template,
    )
