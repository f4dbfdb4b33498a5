import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipModel

from aloe.data.zero_shot import canonicalize_text, load_templates
from aloe.eval.zeroshot import build_siglip_classifier, zeroshot_logits, zeroshot_top1


def _tokenizer(words):
    vocab = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")


def _model():
    torch.manual_seed(0)
    cfg = SiglipConfig(
        text_config=dict(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, image_size=16, patch_size=8),
    )
    m = SiglipModel(cfg).eval()
    with torch.no_grad():
        m.logit_scale.fill_(2.3)
        m.logit_bias.fill_(-1.5)
    return m


def test_zeroshot_equals_hand_computation():
    words = "a photo of the cat dog . bad".split()
    tok, model = _tokenizer(words), _model()
    classes, templates = ["Cat", "dog"], ["a photo of a {}.", "a bad photo of the {}."]
    w, scale, bias = build_siglip_classifier(model, tok, classes, templates)
    assert w.shape == (16, 2) and abs(scale - 2.3) < 1e-6 and abs(bias + 1.5) < 1e-6

    # hand computation, one sentence at a time, ids built without the tokenizer
    vocab = {"<pad>": 0, **{x: i + 2 for i, x in enumerate(words)}}
    cols = []
    for c in ["cat", "dog"]:
        embs = []
        for text in (f"a photo of a {c}", f"a bad photo of the {c}"):  # canonicalised: no "." token
            ids = [vocab[x] for x in text.split()]
            ids = torch.tensor([ids + [0] * (64 - len(ids))])
            with torch.no_grad():
                e = model.text_model(input_ids=ids).pooler_output[0]
            embs.append(e / e.norm())
        m = sum(embs) / len(embs)
        cols.append(m / m.norm())
    torch.testing.assert_close(w, torch.stack(cols, 1), atol=1e-5, rtol=1e-5)

    img = torch.randn(3, 16)
    logits = zeroshot_logits(img, w, scale, bias)
    expected = (img / img.norm(dim=1, keepdim=True)) @ torch.stack(cols, 1) * torch.exp(torch.tensor(2.3)) - 1.5
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-5)

    # the model's own image-text logits agree with ours for a single template
    w1, s1, b1 = build_siglip_classifier(model, tok, classes, templates[:1])
    pix = torch.randn(2, 3, 16, 16)
    ids = tok(["a photo of a cat", "a photo of a dog"], padding="max_length", max_length=64,
              return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = model(input_ids=ids, pixel_values=pix).logits_per_image
        emb = model.get_image_features(pixel_values=pix).pooler_output
    torch.testing.assert_close(zeroshot_logits(emb, w1, s1, b1), ref, atol=1e-4, rtol=1e-4)


def test_zeroshot_top1_counts():
    w = torch.eye(3)

    class Enc:
        def __call__(self, pixels):
            from types import SimpleNamespace
            return SimpleNamespace(pooler_output=pixels)

    x = torch.eye(3)[[0, 1, 2, 1]]
    acc, n = zeroshot_top1(Enc(), [(x[:2], torch.tensor([0, 1])), (x[2:], torch.tensor([2, 0]))], w, 1.0, 0.0)
    assert n == 4 and acc == 75.0


def test_shipped_templates_work():
    words = "a photo of the cat dog . bad".split()
    tok, model = _tokenizer(words), _model()
    w, _, _ = build_siglip_classifier(model, tok, ["cat", "dog"], load_templates("openclip_imagenet"))
    assert w.shape == (16, 2)
    torch.testing.assert_close(w.norm(dim=0), torch.ones(2))


def test_canonicalize_text_matches_big_vision():
    # big_vision prompt_engineering.canonicalize_text: punctuation deleted (not spaced), "_" -> " "
    cases = {
        "a photo of a T-shirt.": "a photo of a tshirt",
        "a photo of a Geoffroy's spider monkey.": "a photo of a geoffroys spider monkey",
        "a photo of a sunglasses / dark glasses / shades.": "a photo of a sunglasses dark glasses shades",
        "a photo of a St. Bernard.": "a photo of a st bernard",
        "  a\tphoto\n of  a kite (bird of prey). ": "a photo of a kite bird of prey",
        "test___test": "test test",
        "a {} in a video game.": "a in a video game",
        "": "",
    }
    assert {k: canonicalize_text(k) for k in cases} == cases
