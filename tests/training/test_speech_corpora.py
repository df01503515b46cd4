"""Corpus loaders on temporary folders that use each corpus's real file names."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from fusion_service.features.audio import SAMPLE_RATE
from training.speech_corpora import find_records, read_audio


def write_tone(path: Path, rate: int = SAMPLE_RATE, seconds: float = 0.1, fmt: str | None = None,
               subtype: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(str(path), 0.1 * np.sin(2 * np.pi * 220 * t), rate, format=fmt, subtype=subtype)


def records_by_name(root: Path) -> dict[str, tuple[str, str, str]]:
    return {r.path.name: (r.label, r.speaker, r.corpus) for r in find_records(root)}


def test_ravdess_names_give_emotion_and_actor(tmp_path):
    for name in ("03-01-01-01-01-01-01.wav", "03-01-02-02-01-01-02.flac", "03-01-05-01-02-01-12.wav",
                 "03-01-06-02-02-02-13.wav", "03-01-08-01-01-02-24.wav"):
        write_tone(tmp_path / "Actor_x" / name)
    assert records_by_name(tmp_path) == {
        "03-01-01-01-01-01-01.wav": ("neutral", "ravdess:01", "ravdess"),
        "03-01-02-02-01-01-02.flac": ("neutral", "ravdess:02", "ravdess"),  # calm counts as neutral
        "03-01-05-01-02-01-12.wav": ("angry", "ravdess:12", "ravdess"),
        "03-01-06-02-02-02-13.wav": ("fear", "ravdess:13", "ravdess"),
        "03-01-08-01-01-02-24.wav": ("surprise", "ravdess:24", "ravdess"),
    }


def test_tess_names_give_emotion_and_speaker_including_the_misnamed_file(tmp_path):
    for name in ("OAF_back_angry.wav", "YAF_bar_ps.wav", "OAF_base_neutral.wav", "YAF_germ_sad.wav",
                 "OA_bite_neutral.wav", "YAF_chair_disgust.wav", "OAF_dog_fear.wav", "YAF_goose_happy.wav"):
        write_tone(tmp_path / f"TESS/{name.split('_')[0]}" / name)
    found = records_by_name(tmp_path)
    assert found["OAF_back_angry.wav"] == ("angry", "tess:OAF", "tess")
    assert found["YAF_bar_ps.wav"] == ("surprise", "tess:YAF", "tess")
    assert found["OA_bite_neutral.wav"] == ("neutral", "tess:OAF", "tess")
    assert {label for label, _, _ in found.values()} == {
        "angry", "surprise", "neutral", "sad", "disgust", "fear", "happy"}


def test_crema_d_names_give_emotion_and_speaker(tmp_path):
    for name in ("1001_DFA_ANG_XX.wav", "1001_IEO_HAP_HI.wav", "1091_TSI_SAD_XX.wav", "1052_WSI_FEA_LO.wav",
                 "1003_ITH_DIS_XX.wav", "1015_MTI_NEU_XX.wav"):
        write_tone(tmp_path / "AudioWAV" / name)
    found = records_by_name(tmp_path)
    assert found["1001_DFA_ANG_XX.wav"] == ("angry", "crema-d:1001", "crema-d")
    assert found["1001_IEO_HAP_HI.wav"] == ("happy", "crema-d:1001", "crema-d")
    assert found["1091_TSI_SAD_XX.wav"] == ("sad", "crema-d:1091", "crema-d")
    assert found["1052_WSI_FEA_LO.wav"][0] == "fear"
    assert found["1003_ITH_DIS_XX.wav"][0] == "disgust"
    assert found["1015_MTI_NEU_XX.wav"][0] == "neutral"


def test_savee_flat_and_speaker_folder_layouts(tmp_path):
    for name in ("DC_a01.wav", "JE_sa05.wav", "JK_su12.wav", "KL_n30.wav", "DC_d03.wav", "JE_f07.wav"):
        write_tone(tmp_path / "ALL" / name)
    write_tone(tmp_path / "AudioData" / "KL" / "h11.wav")
    found = records_by_name(tmp_path)
    assert found["DC_a01.wav"] == ("angry", "savee:DC", "savee")
    assert found["JE_sa05.wav"] == ("sad", "savee:JE", "savee")
    assert found["JK_su12.wav"] == ("surprise", "savee:JK", "savee")
    assert found["KL_n30.wav"] == ("neutral", "savee:KL", "savee")
    assert found["DC_d03.wav"][0] == "disgust" and found["JE_f07.wav"][0] == "fear"
    assert found["h11.wav"] == ("happy", "savee:KL", "savee")


def test_emodb_names_give_emotion_and_speaker_and_leave_boredom_out(tmp_path):
    for name in ("03a01Fa.wav", "08b02Wb.wav", "11a04Tc.wav", "16b10Ab.wav", "09a05Ea.wav", "15a01Nc.wav",
                 "03a04Lc.wav"):
        write_tone(tmp_path / "wav" / name)
    found = records_by_name(tmp_path)
    assert found["03a01Fa.wav"] == ("happy", "emodb:03", "emodb")
    assert found["08b02Wb.wav"] == ("angry", "emodb:08", "emodb")
    assert found["11a04Tc.wav"][0] == "sad"
    assert found["16b10Ab.wav"][0] == "fear"
    assert found["09a05Ea.wav"][0] == "disgust"
    assert found["15a01Nc.wav"][0] == "neutral"
    assert "03a04Lc.wav" not in found  # boredom has no class


def test_class_folder_layout_matches_synonyms_and_leaves_unknown_folders_out(tmp_path):
    write_tone(tmp_path / "Anger" / "clip1.wav")
    write_tone(tmp_path / "sadness" / "clip2.ogg", fmt="OGG")
    write_tone(tmp_path / "fearful" / "x.flac")
    write_tone(tmp_path / "calm" / "y.wav")
    write_tone(tmp_path / "surprised" / "z.wav")
    write_tone(tmp_path / "contempt" / "c.wav")
    write_tone(tmp_path / "misc" / "m.wav")
    (tmp_path / "notes.txt").write_text("not audio")
    found = {name: label for name, (label, _, _) in records_by_name(tmp_path).items()}
    assert found == {"clip1.wav": "angry", "clip2.ogg": "sad", "x.flac": "fear", "y.wav": "neutral",
                     "z.wav": "surprise"}


def test_missing_folder_is_reported():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_records(Path("/nonexistent/speech"))


def test_read_audio_mixes_down_and_resamples_to_the_model_rate(tmp_path):
    path = tmp_path / "stereo_44k.wav"
    t = np.arange(44100) / 44100
    tone = 0.2 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(str(path), np.stack([tone, tone], axis=1), 44100)
    samples = read_audio(path)
    assert samples.dtype == np.float32
    assert samples.shape == (SAMPLE_RATE,)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s of audio: bin index = Hz


def test_symlinked_corpus_folders_are_followed(tmp_path):
    write_tone(tmp_path / "store" / "Actor_17" / "03-01-03-01-01-01-17.flac")
    (tmp_path / "selection").mkdir()
    (tmp_path / "selection" / "Actor_17").symlink_to(tmp_path / "store" / "Actor_17")
    assert records_by_name(tmp_path / "selection") == {
        "03-01-03-01-01-01-17.flac": ("happy", "ravdess:17", "ravdess")}


def write_opus(path: Path) -> None:
    write_tone(path, fmt="OGG", subtype="OPUS")  # as the corpora: Ogg Opus, named .opus


def test_opus_files_are_found_and_tess_in_opus_still_loads(tmp_path):
    write_opus(tmp_path / "tess" / "OAF_angry" / "OAF_bar_angry.opus")
    write_opus(tmp_path / "tess" / "YAF_pleasant_surprise" / "YAF_back_ps.opus")
    assert records_by_name(tmp_path) == {
        "OAF_bar_angry.opus": ("angry", "tess:OAF", "tess"),
        "YAF_back_ps.opus": ("surprise", "tess:YAF", "tess"),
    }
    samples = read_audio(tmp_path / "tess" / "OAF_angry" / "OAF_bar_angry.opus")
    assert samples.dtype == np.float32 and abs(len(samples) - SAMPLE_RATE // 10) < SAMPLE_RATE // 100


NEMO_TABLE = (
    "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"
    "WR0_surprised_64.wav\tsurprised\tUcho wykrywa dźwięki.\tucho wykrywa dźwięki\t        WR0\tmale\t23\n"
    "EB0_neutral_13.wav\tneutral\tInteresuje mnie \"historia\" Polski.\tinteresuje mnie historia polski\t"
    "        EB0\tfemale\t27\n"
    "KS0_anger_5.wav\tanger\tKupiłem nową szafę.\tkupiłem nową szafę\t        KS0\tmale\t23\n"
)


def test_nemo_names_and_data_tsv_give_emotion_speaker_and_sex(tmp_path):
    for name in ("WR0_surprised_64.opus", "EB0_neutral_13.opus", "KS0_anger_5.opus", "IC0_happiness_2.opus",
                 "MK0_sadness_90.opus", "TP0_fear_1.opus"):
        write_opus(tmp_path / "nemo" / "samples" / name)
    (tmp_path / "nemo" / "data.tsv").write_text(NEMO_TABLE, encoding="utf-8")
    found = {r.path.name: r for r in find_records(tmp_path)}
    assert (found["WR0_surprised_64.opus"].label, found["WR0_surprised_64.opus"].speaker) == ("surprise", "nemo:WR0")
    assert found["WR0_surprised_64.opus"].sex == "male"
    assert (found["EB0_neutral_13.opus"].label, found["EB0_neutral_13.opus"].sex) == ("neutral", "female")
    assert found["KS0_anger_5.opus"].label == "angry" and found["KS0_anger_5.opus"].corpus == "nemo"
    # Files the table does not describe are still read from their names, without a sex.
    assert (found["IC0_happiness_2.opus"].label, found["IC0_happiness_2.opus"].speaker) == ("happy", "nemo:IC0")
    assert found["IC0_happiness_2.opus"].sex is None
    assert found["MK0_sadness_90.opus"].label == "sad" and found["TP0_fear_1.opus"].label == "fear"


def test_nemo_table_wins_over_the_name(tmp_path):
    write_opus(tmp_path / "samples" / "KS0_anger_5.opus")
    (tmp_path / "data.tsv").write_text(NEMO_TABLE.replace("KS0_anger_5.wav\tanger", "KS0_anger_5.wav\tfear"),
                                       encoding="utf-8")
    assert records_by_name(tmp_path) == {"KS0_anger_5.opus": ("fear", "nemo:KS0", "nemo")}


def test_turevdb_class_folders_and_speaker_numbers(tmp_path):
    for folder, name in (("Angry", "1157_kz_acik.opus"), ("Calm", "1234_kz_algi.opus"),
                         ("Happy", "7895_beste.opus"), ("Sad", "6783_kz_cekirge.opus")):
        write_opus(tmp_path / "turevdb" / folder / name)
    assert records_by_name(tmp_path) == {
        "1157_kz_acik.opus": ("angry", "turevdb:1157", "turevdb"),
        "1234_kz_algi.opus": ("neutral", "turevdb:1234", "turevdb"),  # calm counts as neutral
        "7895_beste.opus": ("happy", "turevdb:7895", "turevdb"),
        "6783_kz_cekirge.opus": ("sad", "turevdb:6783", "turevdb"),
    }


def test_urdu_names_give_emotion_speaker_and_sex(tmp_path):
    for folder, name in (("Angry", "SM1_F10_A010.opus"), ("Happy", "SF6_F03_H041.opus"),
                         ("Neutral", "SM25_F1_N012.opus"), ("Sad", "SF10_F2_S002.opus")):
        write_opus(tmp_path / "urdu" / folder / name)
    found = {r.path.name: (r.label, r.speaker, r.corpus, r.sex) for r in find_records(tmp_path)}
    assert found == {
        "SM1_F10_A010.opus": ("angry", "urdu:SM1", "urdu", "male"),
        "SF6_F03_H041.opus": ("happy", "urdu:SF6", "urdu", "female"),
        "SM25_F1_N012.opus": ("neutral", "urdu:SM25", "urdu", "male"),
        "SF10_F2_S002.opus": ("sad", "urdu:SF10", "urdu", "female"),
    }


def test_ravdess_and_tess_records_carry_the_speakers_sex(tmp_path):
    write_tone(tmp_path / "03-01-05-01-02-01-17.wav")
    write_tone(tmp_path / "03-01-05-01-02-01-18.wav")
    write_tone(tmp_path / "YAF_germ_sad.wav")
    assert {r.path.name: r.sex for r in find_records(tmp_path)} == {
        "03-01-05-01-02-01-17.wav": "male", "03-01-05-01-02-01-18.wav": "female", "YAF_germ_sad.wav": "female"}
