"""add.py MODEL... : copy the draft specs of MODELs into specs/ and index them in zoo.yaml."""
import shutil, sys
ENTRIES = {
 "seresnet50": ("seresnet.yaml", "  - {name: seresnet50, spec: seresnet.yaml, params: {depth: 50}, peer: {module: timm, call: create_model, args: [seresnet50]}}"),
 "preact_resnet18": ("preact_resnet18.yaml", "  - {name: preact_resnet18, spec: preact_resnet18.yaml, params: {}, reference: preact_resnet18}"),
 "wrn_28_10": ("wrn.yaml", "  - {name: wrn_28_10, spec: wrn.yaml, params: {depth: 28, widen: 10}, reference: wide_resnet, paper: 36.5M}"),
 "se_resnet18": ("se_resnet18.yaml", "  - {name: se_resnet18, spec: se_resnet18.yaml, params: {}, reference: se_resnet18}"),
 "mobilenet_v2": ("mobilenet_v2.yaml", "  - {name: mobilenet_v2, spec: mobilenet_v2.yaml, params: {}, torchvision: mobilenet_v2}"),
 "fcn_resnet50": ("segmentation.yaml", "  - {name: fcn_resnet50, spec: segmentation.yaml, params: {head: fcn},\n     peer: {module: torchvision.models.segmentation, call: fcn_resnet50, kwargs: {weights: null, weights_backbone: null, aux_loss: false}}}"),
 "smp_unet_resnet34": ("smp_unet.yaml", "  - {name: smp_unet_resnet34, spec: smp_unet.yaml, params: {},\n     peer: {module: segmentation_models_pytorch, call: Unet, kwargs: {encoder_name: resnet34, encoder_weights: null, classes: 2}}}"),
 "monai_unet": ("monai_unet.yaml", "  - {name: monai_unet, spec: monai_unet.yaml, params: {},\n     peer: {module: monai.networks.nets, call: UNet, kwargs: {spatial_dims: 2, in_channels: 1, out_channels: 2, channels: [16, 32, 64, 128, 256], strides: [2, 2, 2, 2], num_res_units: 2}}}"),
 "attention_unet": ("attention_unet.yaml", "  - {name: attention_unet, spec: attention_unet.yaml, params: {}, reference: attention_unet}"),
 "unet_tutorial": ("unet_tutorial.yaml", "  - {name: unet_tutorial, spec: unet_tutorial.yaml, params: {}, reference: unet_tutorial}"),
}
zoo = "/work/wt-zoo/specs/zoo.yaml"
text = open(zoo).read()
for m in sys.argv[1:]:
    spec, line = ENTRIES[m]
    shutil.copy(f"/tmp/zoo/drafts/{spec}", f"/work/wt-zoo/specs/{spec}")
    if f"name: {m}," not in text:
        text = text.rstrip("\n") + "\n" + line + "\n"
open(zoo, "w").write(text)
