"""The CPU a benchmark ran on, for its header: the model name and, since virtual machines often
report only "Intel(R) Xeon(R) Processor", the family and model numbers (family 6 model 207 is
Emerald Rapids, 143 Sapphire Rapids; AMD family 26 is Zen 5) and the CPU count."""
import os, platform


def cpu_model():
    name, family, model = None, None, None
    try:
        for line in open('/proc/cpuinfo'):
            key, _, value = line.partition(':')
            key, value = key.strip(), value.strip()
            if key == 'model name' and name is None:
                name = value
            elif key == 'cpu family' and family is None:
                family = value
            elif key == 'model' and model is None:
                model = value
    except OSError:
        pass
    name = name or platform.processor() or 'unknown CPU'
    numbers = f', family {family} model {model}' if family and model else ''
    return f'{name}{numbers}, {os.cpu_count()} CPUs'
