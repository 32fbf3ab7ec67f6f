import torch

from prunekit.calibration.engine import LayerwiseEngine
from prunekit.calibration.stats import HESSIAN, SQ_NORM
from prunekit.models.adapters import adapter_for


def test_engine_without_edits_reproduces_full_forward_logits(any_tiny_model):
    model = any_tiny_model
    adapter = adapter_for(model)
    torch.manual_seed(1)
    batches = [torch.randint(0, 128, (2, 24)), torch.randint(0, 128, (3, 24))]
    engine = LayerwiseEngine(model, adapter, batches, progress=False)
    logits = engine.logits(engine.run())
    for got, batch in zip(logits, batches):
        want = model(batch).logits
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_collected_statistics_match_direct_computation(tiny_llama):
    model = tiny_llama
    adapter = adapter_for(model)
    batch = torch.randint(0, 128, (2, 16))
    seen: dict = {}

    def block_fn(ctx):
        stats = ctx.collect({SQ_NORM, HESSIAN})
        if ctx.index == 1:
            seen["stats"] = stats["mlp.down_proj"]

    captured = {}
    layer1 = adapter.layers(model)[1].mlp.down_proj

    def grab(_module, inputs, _output):
        captured.setdefault("x", inputs[0].detach())

    h = layer1.register_forward_hook(grab)
    model(batch)
    h.remove()
    LayerwiseEngine(model, adapter, [batch], progress=False).run(block_fn)
    x = captured["x"].reshape(-1, captured["x"].shape[-1])
    s = seen["stats"]
    assert s.tokens == 32
    torch.testing.assert_close(s.sq_sum, x.pow(2).sum(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s.hessian, 2 * x.T @ x / 32, rtol=1e-5, atol=1e-5)


def test_passing_on_the_collected_outputs_is_exact_and_saves_one_forward_per_block(tiny_llama):
    """A statistics-only method reuses its collect pass as the block output: same logits, less work."""
    model = tiny_llama
    adapter = adapter_for(model)
    batches = [torch.randint(0, 128, (2, 16)), torch.randint(0, 128, (1, 16))]
    calls = []  # forwards started (a statistics-only pass stops inside the block)
    handles = [
        layer.register_forward_pre_hook(lambda *_a, i=i: calls.append(i))
        for i, layer in enumerate(adapter.layers(model))
    ]

    def run(reuse: bool) -> list[torch.Tensor]:
        def block_fn(ctx):
            ctx.collect({SQ_NORM}, pass_on=reuse)

        calls.clear()
        engine = LayerwiseEngine(model, adapter, batches, progress=False)
        return engine.logits(engine.run(block_fn))

    recomputed, n_recomputed = run(False), len(calls)
    reused, n_reused = run(True), len(calls)
    for h in handles:
        h.remove()
    assert n_recomputed - n_reused == len(adapter.layers(model)) * len(batches)
    for got, again, batch in zip(reused, recomputed, batches):
        torch.testing.assert_close(got, model(batch).logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got, again, rtol=0, atol=0)


def test_capture_moves_back_everything_it_moved(tiny_llama, monkeypatch):
    """Modules are recorded as living on a fake 'home' device; every module capture() moves to the
    compute device must be moved back there (the spy only records moves, so no GPU is needed)."""
    import prunekit.calibration.engine as engine_module

    home = torch.device("cuda", 7)
    moves: list[tuple[int, torch.device]] = []
    real_to = torch.nn.Module.to

    def spy(module, *args, **kwargs):
        target = torch.device(args[0] if args else kwargs["device"])
        moves.append((id(module), target))
        return real_to(module, target) if target.type == "cpu" else module

    monkeypatch.setattr(torch.nn.Module, "to", spy)
    monkeypatch.setattr(engine_module, "_home", lambda _m: home)
    model = tiny_llama
    LayerwiseEngine(model, adapter_for(model), [torch.randint(0, 128, (2, 8))], "cpu").capture()
    to_device = [m for m, d in moves if d.type == "cpu"]
    back_home = [m for m, d in moves if d == home]
    assert to_device and sorted(to_device) == sorted(back_home)
